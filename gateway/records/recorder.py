"""The batched writer: requests hand over records without waiting; one task writes them.

A request hands over a ``Recordable`` (the pipeline's exchange record); its rows are built in
the writer task (``entry()``), not on the request path, and the recorder's observers (the
telemetry) see each entry there too.

Batches form naturally: while one insert runs, the next records queue up and go in the next
insert. A failed batch is retried with backoff, then spilled to a JSON-lines file so nothing is
lost when the database is down or full; ``gateway exchanges import-spill`` loads it back.
Shutdown drains the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Table, insert

from gateway.config import RecordingConfig
from gateway.db.models import Exchange, Finding, ReviewItem
from gateway.db.session import Sessions
from gateway.policy.decision import Decision

log = logging.getLogger("gateway.recorder")

_BACKOFF = (0.05, 0.25, 1.0, 2.0)
_TIMES = ("received_at", "upstream_started_at", "first_byte_at", "ended_at")


@dataclass(frozen=True, slots=True)
class Entry:
    """One exchange row and the findings and review items that belong to it."""

    row: dict[str, Any]
    findings: list[dict[str, Any]]
    reviews: list[dict[str, Any]] = field(default_factory=list)
    #: the decision behind the row, for observers; not written (the row holds it as JSON)
    decision: Decision | None = field(default=None, compare=False)

    def to_json(self) -> str:
        return json.dumps(
            {"exchange": self.row, "findings": self.findings, "reviews": self.reviews},
            default=str,
        )

    @classmethod
    def from_json(cls, line: str) -> Entry:
        data = json.loads(line)
        row, findings, reviews = data["exchange"], data["findings"], data.get("reviews", [])
        for key in _TIMES:
            if row.get(key):
                row[key] = datetime.fromisoformat(row[key])
        for finding in findings:
            finding["received_at"] = datetime.fromisoformat(finding["received_at"])
        for review in reviews:
            review["created_at"] = datetime.fromisoformat(review["created_at"])
        return cls(row, findings, reviews)


_EXCHANGES, _FINDINGS, _REVIEWS = (
    cast(Table, model.__table__) for model in (Exchange, Finding, ReviewItem)
)


async def insert_entries(sessions: Sessions, entries: list[Entry]) -> None:
    async with sessions.begin() as session:
        # Core inserts (executemany), not the ORM's bulk path: the rows are plain already.
        await session.execute(insert(_EXCHANGES), [e.row for e in entries])
        findings = [f for e in entries for f in e.findings]
        if findings:
            await session.execute(insert(_FINDINGS), findings)
        reviews = [r for e in entries for r in e.reviews]
        if reviews:
            await session.execute(insert(_REVIEWS), reviews)


@dataclass(slots=True)
class RecorderStats:
    written: int = 0
    spilled: int = 0
    failed_batches: int = 0
    failing: bool = False
    last_error: str | None = None
    #: records whose rows could not be built at all (each logged with the record)
    unbuildable: int = 0


class Recordable(Protocol):
    """What a request hands over: it knows how to become its rows."""

    def entry(self) -> Entry: ...


Observer = Callable[[Entry], None]


class ExchangeRecorder:
    def __init__(
        self, sessions: Sessions, config: RecordingConfig, observers: Sequence[Observer] = ()
    ) -> None:
        self._sessions = sessions
        self._config = config
        self._queue: asyncio.Queue[Recordable | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.stats = RecorderStats()
        self._observers = tuple(observers)
        #: the review stage's sampling (for oversight, not security)
        self.rng = random.Random()  # noqa: S311

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        return not self.stats.failing and self.pending < self._config.max_queue

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The writer task, for the app's supervisor."""
        return self._task

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="exchange-recorder")

    def submit(self, record: Recordable) -> None:
        """Hand a finished record over. Never blocks; beyond the queue limit it spills."""
        if self._queue.qsize() >= self._config.max_queue:
            entry = self._entry(record)
            if entry is not None:
                self._spill([entry], "queue full")
            return
        self._queue.put_nowait(record)

    def _entry(self, record: Recordable) -> Entry | None:
        """The record's rows; None (logged, counted) when even its fallback cannot be built,
        so one bad record never stops the writer or costs the rest of its batch."""
        try:
            entry = record.entry()
        except Exception:
            self.stats.unbuildable += 1
            log.exception("an exchange record could not be turned into rows: %r", record)
            return None
        for observe in self._observers:
            try:
                observe(entry)
            except Exception:  # an observer's failure never costs a record
                log.exception("an exchange observer failed")
        return entry

    async def stop(self) -> None:
        """Write everything still queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            records = [first] if first is not None else []
            stopping = first is None
            while not stopping and len(records) < self._config.batch_size:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                else:
                    records.append(item)
            if records:
                entries = [e for e in map(self._entry, records) if e is not None]
                if entries:
                    await self._write(entries)

    async def _write(self, batch: list[Entry]) -> None:
        for attempt in range(self._config.retries + 1):
            if await self._insert(batch):
                return
            if attempt < self._config.retries:
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
        # One bad record must not take its batch with it: write them one by one, each also
        # cleaned of what PostgreSQL refuses (NUL characters), and spill only what still fails.
        failed = [e for e in batch if len(batch) == 1 or not await self._insert([e])]
        failed = [e for e in failed if not await self._insert([_without_nul(e)])]
        if failed:
            self._spill(failed, self.stats.last_error or "write failed")

    async def _insert(self, entries: list[Entry]) -> bool:
        try:
            await insert_entries(self._sessions, entries)
        except Exception as exc:  # any driver error: retried, then spilled, never lost
            self.stats.failed_batches += 1
            self.stats.failing = True
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("writing %d exchange records failed: %s", len(entries), exc)
            return False
        self.stats.written += len(entries)
        self.stats.failing = False
        return True

    def _spill(self, entries: list[Entry], reason: str) -> None:
        self.stats.spilled += len(entries)
        path = self._config.spill_dir / f"exchanges-{time.strftime('%Y%m%d')}.jsonl"
        lines = "".join(entry.to_json() + "\n" for entry in entries)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(lines)
        except OSError as exc:
            # The last resort: the records go to the log, which an operator can replay.
            log.error("spilling failed (%s); records follow:\n%s", exc, lines)
            return
        log.error("spilled %d exchange records to %s (%s)", len(entries), path, reason)


def read_spill(path: Path) -> list[Entry]:
    """Read a spill file back into entries ready to insert."""
    return [
        Entry.from_json(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _without_nul(entry: Entry) -> Entry:
    """The entry with NUL characters replaced (U+FFFD), which PostgreSQL text and jsonb refuse."""
    return Entry(_clean(entry.row), entry.findings, entry.reviews)
