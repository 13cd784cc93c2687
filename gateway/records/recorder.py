"""The batched writer: requests hand over records without waiting; one task writes them.

A request hands over a ``Recordable`` (the pipeline's exchange record); its rows are built in
the writer task (``entry()``), not on the request path, and the recorder's observers (the
telemetry) see each entry there too. Each batch goes on the audit chain in the transaction
that writes it: one lock of the chain's head per batch, the leaves built in the writer task.

Batches form naturally: while one insert runs, the next records queue up and go in the next
insert. The record is never lost (``gateway/records/spool.py``):

- a batch the database refuses while it answers has a bad record in it: each is written on
  its own, and one that still fails with an error of its own (an integrity or data error) is
  quarantined; readiness is untouched;
- a batch that fails because the database is slow or away (a statement timeout, a lost
  connection, a lock: ``entries.transient``) goes to the spool, never to the quarantine;
  while the database is unreachable (or its schema missing), batches go to the spool at once;
  a second task replays the spool, in order and idempotently, every
  ``recording.replay_seconds`` once the database answers;
- when the spool cannot be written either, the records go to the log, and ```accepts()`` turns
  false: the pipeline refuses new traffic (``recording.on_spool_failure: refuse``), or serves
  it, counting what only the log holds (``serve``).

The recorder knows the exchanges that have begun and not yet been handed over (``begin``):
shutdown waits for them, bounded, before it writes the queue and stops; a record handed over
from then on goes to the spool.

Nothing here blocks the event loop on the disk: the spool's fsyncs, the quarantine's writes and
the replay's reads run on worker threads (``gateway/records/spool.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.audit.chain import AuditChain
from gateway.config.sections import RecordingConfig
from gateway.db.session import Sessions
from gateway.records.entries import (
    Entry,
    describe,
    insert_entries,
    reachable,
    read_spill,
    transient,
)
from gateway.records.replay import RecorderStats, Replayer
from gateway.records.spool import SEAL_BYTES, Spool, to_log

__all__ = ["Entry", "ExchangeRecorder", "Observer", "RecorderStats", "insert_entries", "read_spill"]

log = logging.getLogger("gateway.recorder")

#: at shutdown, how long the recorder waits for exchanges still open once the server has
#: cancelled what outlived its grace (their records are handed over as they unwind)
OPEN_WAIT_SECONDS = 5.0


class Recordable(Protocol):
    """What a request hands over: it knows how to become its rows."""

    def entry(self) -> Entry: ...


Observer = Callable[[Entry], None]


class ExchangeRecorder:
    def __init__(
        self,
        sessions: Sessions,
        config: RecordingConfig,
        observers: Sequence[Observer] = (),
        chain: AuditChain | None = None,
    ) -> None:
        self._sessions = sessions
        #: the audit chain every record written goes on, in its batch's transaction
        self._chain = chain
        self._config = config
        self._queue: asyncio.Queue[Recordable | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self.stats = RecorderStats()
        self._observers = tuple(observers)
        self.spool = Spool(config.spill_dir)
        self._replayer = Replayer(
            sessions, self.spool, self.stats, config.batch_size, self._quarantine, chain,
            written=self._written,
        )
        self._open: set[str] = set()
        #: begun and not yet in the database (queued, or in the spool until the replay writes
        #: it), with the key that made it once it is known: a receipt its key asks for is pending
        self._unwritten: dict[str, str | None] = {}
        self._none_open = asyncio.Event()
        self._none_open.set()
        #: stopped: a record handed over later (past the shutdown's wait) goes to the spool
        self._stopped = False
        #: the review stage's sampling (for oversight, not security)
        self.rng = random.Random()  # noqa: S311

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def open(self) -> int:
        """Exchanges begun and not yet handed over."""
        return len(self._open)

    @property
    def can_record(self) -> bool:
        """Whether a record handed over now reaches the database or the spool."""
        return not (self.stats.failing and self.spool.broken is not None)

    def accepts(self) -> bool:
        """Whether the pipeline may take a new exchange: something can record it, or the
        operator chose to serve unrecorded (``recording.on_spool_failure: serve``, counted)."""
        if self.can_record:
            return True
        if self._config.on_spool_failure == "serve":
            self.stats.served_unrecorded += 1
            return True
        return False

    @property
    def healthy(self) -> bool:
        return self.can_record and self.pending < self._config.max_queue

    def health(self) -> dict[str, Any]:
        """The recorder's entry in ``/readyz``."""
        return {
            "ok": self.healthy,
            "pending": self.pending,
            "open": self.open,
            "written": self.stats.written,
            "database_unreachable": self.stats.failing,
            "spilled": self.stats.spilled,
            "spool_waiting": self.spool.waiting(),
            "spool_error": self.spool.broken,
            "replayed": self.stats.replayed,
            "quarantined": self.stats.quarantined,
            "logged_only": self.stats.logged,
            "served_unrecorded": self.stats.served_unrecorded,
            "last_error": self.stats.last_error,
        }

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The writer task, for the app's supervisor."""
        return self._task

    def start(self) -> None:
        self._stopped = False
        self._task = asyncio.create_task(self._run(), name="exchange-recorder")
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep(), name="exchange-spool")

    def begin(self, record_id: str) -> None:
        """An exchange has begun: shutdown waits for its record (``submit`` ends it)."""
        self._open.add(record_id)
        self._unwritten[record_id] = None
        self._none_open.clear()

    def made_by(self, record_id: str, key_id: str) -> None:
        """The begun exchange's caller is authenticated: its key may wait for the receipt."""
        if record_id in self._unwritten:
            self._unwritten[record_id] = key_id

    def holds(self, record_id: str) -> bool:
        """Whether the exchange has begun and its rows are not in the database yet (queued or
        spooled; never for one quarantined, logged only or unbuildable: it will not come)."""
        return record_id in self._unwritten

    def holds_for(self, record_id: str, key_id: str) -> bool:
        """``holds``, for an exchange this key made: another key learns nothing of it."""
        return self._unwritten.get(record_id) == key_id

    def _written(self, entries: Sequence[Entry]) -> None:
        """These records are in the database, or will never be: no receipt waits for them."""
        for entry in entries:
            self._unwritten.pop(entry.id, None)

    def submit(self, record: Recordable) -> None:
        """Hand a finished record over. Never blocks; beyond the queue limit it spills."""
        self._ended(getattr(record, "id", None))
        if self._stopped or self._queue.qsize() >= self._config.max_queue:
            entry = self._entry(record)
            if entry is not None:
                self._spill([entry], "after the shutdown" if self._stopped else "queue full")
            return
        self._queue.put_nowait(record)

    def _ended(self, record_id: object) -> None:
        if isinstance(record_id, str):
            self._open.discard(record_id)
        if not self._open:
            self._none_open.set()

    def _entry(self, record: Recordable) -> Entry | None:
        """The record's rows, fitted to their columns; None (logged, counted) when even its
        fallback cannot be built, so one bad record never stops the writer or costs the rest
        of its batch."""
        try:
            entry = record.entry().fitted()
        except Exception as exc:  # logged without the record: its bodies stay out of the log
            self.stats.unbuildable += 1
            record_id = getattr(record, "id", None)
            if isinstance(record_id, str):
                self._unwritten.pop(record_id, None)
            log.error("exchange record %s (%s) could not be turned into rows: %s: %s",
                      record_id, getattr(record, "endpoint", None), type(exc).__name__,
                      str(exc)[:500])
            return None
        for observe in self._observers:
            try:
                observe(entry)
            except Exception:  # an observer's failure never costs a record
                log.exception("an exchange observer failed")
        return entry

    async def stop(self, open_wait: float = OPEN_WAIT_SECONDS) -> None:
        """Wait (at most ``open_wait``) for the exchanges still open, write everything
        queued, make the spool durable, then stop."""
        if self._task is None:
            return
        await self.wait_open(open_wait)
        # From here a record handed over goes to the spool: one queued behind the sentinel
        # (during the final write) would never be read.
        self._stopped = True
        self._queue.put_nowait(None)
        try:
            await self._task
        finally:  # a writer that failed leaves its queue: spooled all the same
            self._task = None
            self._spill_queued()
            if self._keeper is not None:
                self._keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._keeper
                self._keeper = None
            await self.spool.close()

    def _spill_queued(self) -> None:
        """What is still queued once the writer has ended (nothing, unless it failed)."""
        left: list[Entry] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            entry = None if item is None else self._entry(item)
            if entry is not None:
                left.append(entry)
        if left:
            self._spill(left, "left queued at the shutdown")

    async def wait_open(self, bound: float = OPEN_WAIT_SECONDS) -> None:
        """Wait, at most ``bound`` seconds, until every exchange begun has handed its record
        over."""
        if not self._open:
            return
        try:
            await asyncio.wait_for(self._none_open.wait(), bound)
        except TimeoutError:
            log.error("at shutdown, %d exchanges never handed their records over", self.open)

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
        if self.stats.failing:  # the database is down: the replay brings these back
            self._spill(batch, "the database is unavailable")
            return
        error = await self._insert(batch)
        if error is None:
            return
        if await self._spooled(batch, error):
            return
        # The database answers: one bad record must not take its batch (or readiness) with
        # it. Each is written alone; one that still fails alone, with an error of its own, is
        # quarantined.
        for at, entry in enumerate(batch):
            error = await self._alone(entry)
            if error is None:
                continue
            if await self._spooled(batch[at:], error):
                return
            await self._quarantine(entry, describe(error))

    async def _spooled(self, entries: list[Entry], error: Exception) -> bool:
        """Spool the entries when the write failed for the database's sake, not for a
        record's: True when they were. A database that is slow (a statement timeout) or away
        takes no more batches until a replay writes the spool (so a slow one costs its
        timeout once, not once a batch, at the shutdown too)."""
        if transient(error):
            if not self.stats.failing:
                log.error(
                    "the database is slow or away (%s): exchange records go to the spool",
                    describe(error),
                )
            self.stats.failing = True
        elif await self._reachable():
            return False
        self._spill(entries, describe(error))
        return True

    async def _alone(self, entry: Entry) -> Exception | None:
        error: Exception | None = None
        for _ in range(max(1, self._config.retries)):
            error = await self._insert([entry])
            if error is None or transient(error):
                return error
        return error

    async def _insert(self, entries: list[Entry]) -> Exception | None:
        """Write the entries; the error when that failed."""
        try:
            await insert_entries(self._sessions, entries, self._chain)
        except Exception as exc:  # any driver error: split, spooled or quarantined, never lost
            self.stats.failed_batches += 1
            self.stats.last_error = describe(exc)
            log.warning("writing %d exchange records failed: %s", len(entries), describe(exc))
            return exc
        self.stats.written += len(entries)
        self._written(entries)
        return None

    async def _reachable(self) -> bool:
        """Whether the database answers; when it does not, the recorder spools until a
        replay finds it back."""
        if await reachable(self._sessions):
            return True
        if not self.stats.failing:
            log.error("the database is unreachable: exchange records go to the spool")
        self.stats.failing = True
        return False

    async def _quarantine(self, entry: Entry, why: str) -> None:
        self._written([entry])
        if await self.spool.quarantine(entry, why):
            self.stats.quarantined += 1
            log.error("exchange record %s quarantined: %s", entry.id, why)
        else:
            self.stats.logged += 1
            to_log([entry], f"refused by the database: {why}")

    def _spill(self, entries: list[Entry], reason: str) -> None:
        if self.spool.append(entries):
            self.stats.spilled += len(entries)
            log.warning("spooled %d exchange records (%s)", len(entries), reason)
            return
        self.stats.logged += len(entries)
        self._written(entries)
        to_log(entries, f"{reason}; the spool cannot be written: {self.spool.broken}")

    async def _keep(self) -> None:
        """Every ``fsync_seconds``, the spool made durable (and sealed once it is big); every
        ``replay_seconds``, what it holds replayed once the database is back."""
        tick = min(self._config.fsync_seconds, self._config.replay_seconds)
        last_replay = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            await self.spool.sync()
            if self.spool.active_size() >= SEAL_BYTES:
                await self.spool.seal()
            if time.monotonic() - last_replay < self._config.replay_seconds:
                continue
            last_replay = time.monotonic()
            try:
                await self.replay()
            except Exception:  # the next tick tries again; the spool keeps the records
                log.exception("replaying the spool failed")

    async def replay(self) -> None:
        """Write what the spool holds (``gateway/records/replay.py``)."""
        await self._replayer.replay()
