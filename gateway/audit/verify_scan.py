"""One range of a chain, recomputed: the verifier's unit of work (``gateway.audit.verify``
hands ranges to a process pool when the chain is long).

A range is the entries whose sequence number is in ``[start, end)``, read in keyset pages
with the exchange each one names (an outer join) and that exchange's findings, through Core
selects. Each exchange entry's leaf is rebuilt from the row as it stands (``exchange_body``
and ``leaf_text`` with the sequence number and previous hash it must have) and compared to
the stored leaf byte for byte: one comparison checks the position, the link and every field.
Only an entry that differs is opened up (``verify_diff``) to say what differs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from typing import cast as typed

from sqlalchemy import Table, Text, and_, cast, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import FINDING_FIELDS, exchange_body, leaf_text
from gateway.audit.verify_diff import Erasures, Problem, diagnose_event, diagnose_exchange
from gateway.audit.verify_fast import JSON_COLUMNS, fast_leaf
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditEntry, Exchange, Finding
from gateway.db.session import create_engine

ENTRIES = typed(Table, AuditEntry.__table__)
EXCHANGES = typed(Table, Exchange.__table__)
FINDINGS = typed(Table, Finding.__table__)
#: problems kept per range: the first is what is reported, a few more help a reader
KEEP = 20
PAGE = 2000


@dataclass(frozen=True)
class RangeTask:
    """What a worker needs: where the database is, the chain's keys, the range, and the
    erasure events of every chain (they excuse erased content)."""

    url: str
    audit: AuditConfig
    chain_id: str
    start: int
    end: int
    erasures: Erasures


@dataclass
class RangeResult:
    start: int
    end: int
    #: entries read (positions without one are ``deleted`` problems)
    count: int = 0
    exchanges: int = 0
    events: int = 0
    #: the first entry's stored prev field (the link to the range before, checked by the
    #: caller) and the last entry's hash
    first_prev: str | None = None
    last_hash: str | None = None
    #: the leaf hashes in order, 32 bytes each, for the Merkle roots
    hashes: bytes = b""
    problems: list[Problem] = field(default_factory=list)
    #: exchange entries the fast path could not vouch for, checked the exact way
    rechecked: int = 0
    #: (position, the seq its leaf names) of entries out of place: to tell a reordering
    #: from a removal or an insertion
    misplaced: list[tuple[int, int]] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        if len(self.problems) < KEEP:
            self.problems.append(problem)


def scan_range(task: RangeTask) -> RangeResult:
    """The range recomputed, in a process of its own (the pool's entry point)."""
    return asyncio.run(scan_range_async(task))


async def scan_range_async(task: RangeTask) -> RangeResult:
    keys = AuditKeys.load(task.audit, create=False)
    engine = create_engine(task.url)
    try:
        async with engine.connect() as connection:
            return await _Scanner(task, keys, connection).run()
    finally:
        await engine.dispose()


def _page_query(chain_id: str, after: int, end: int) -> Any:
    joined = ENTRIES.outerjoin(
        EXCHANGES, and_(EXCHANGES.c.id == ENTRIES.c.ref, ENTRIES.c.kind == "exchange")
    )
    return (
        select(
            ENTRIES.c.seq.label("audit_seq"),
            ENTRIES.c.kind.label("audit_kind"),
            ENTRIES.c.ref.label("audit_ref"),
            ENTRIES.c.leaf.label("audit_leaf"),
            ENTRIES.c.entry_hash.label("audit_hash"),
            *(c for c in EXCHANGES.c if c.key not in JSON_COLUMNS),
            *(cast(EXCHANGES.c[name], Text).label(f"raw_{name}") for name in JSON_COLUMNS),
        )
        .select_from(joined)
        .where(ENTRIES.c.chain_id == chain_id, ENTRIES.c.seq > after, ENTRIES.c.seq < end)
        .order_by(ENTRIES.c.seq)
        .limit(PAGE)
    )


async def _findings(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    if not ids:
        return found
    columns = [FINDINGS.c[name] for name in FINDING_FIELDS]
    query = select(FINDINGS.c.exchange_id, *columns).where(FINDINGS.c.exchange_id.in_(ids))
    for row in (await connection.execute(query)).mappings():
        found.setdefault(row["exchange_id"], []).append(row)
    return found


class _Scanner:
    def __init__(self, task: RangeTask, keys: AuditKeys, connection: AsyncConnection) -> None:
        self.task = task
        self.keys = keys
        self.connection = connection
        self.result = RangeResult(task.start, task.end)
        self.position = task.start
        self.prev: str | None = None  # unknown at the range's start: the caller links it
        self.hashes = bytearray()

    async def run(self) -> RangeResult:
        after = self.task.start - 1
        while True:
            rows = (await self.connection.execute(
                _page_query(self.task.chain_id, after, self.task.end)
            )).mappings().all()
            if not rows:
                break
            ids = [r["audit_ref"] for r in rows if r["id"] is not None]
            findings = await _findings(self.connection, ids)
            for row in typed(Sequence[Mapping[str, Any]], rows):
                self._entry(row, findings.get(row["audit_ref"], []))
            after = rows[-1]["audit_seq"]
        if self.position < self.task.end:
            self._missing(self.task.end)
        self.result.hashes = bytes(self.hashes)
        return self.result

    def _missing(self, seq: int) -> None:
        """Positions up to ``seq`` have no entry."""
        last = seq - 1
        which = f"entry {self.position}" if last == self.position else (
            f"entries {self.position}..{last}")
        self.result.add(Problem("deleted", self.task.chain_id, self.position, None,
                                f"{which} missing from the chain"))
        self.position = seq
        self.prev = None

    def _entry(self, row: Mapping[str, Any], findings: list[Any]) -> None:
        seq = int(row["audit_seq"])
        if seq > self.position:
            self._missing(seq)
        leaf: bytes = row["audit_leaf"].encode("utf-8")
        stored: str = row["audit_hash"]
        if self.prev is None:
            self.prev = self._first_prev(leaf)
        computed = hashlib.sha256(b"\x00" + leaf).hexdigest()
        if computed != stored:
            self.result.add(Problem("edited", self.task.chain_id, seq, _exchange_ref(row),
                                    "the entry's hash is not the hash of its leaf "
                                    "(the leaf or its hash was changed)"))
        if row["audit_kind"] == "exchange":
            self.result.exchanges += 1
            self._exchange(row, leaf, findings)
        else:
            self.result.events += 1
            self._event(row, leaf)
        self.hashes += bytes.fromhex(computed)
        if self.result.count == 0 and seq == self.task.start:
            self.result.first_prev = self.prev
        self.result.count += 1
        self.result.last_hash = computed
        self.prev = computed
        self.position = seq + 1

    def _first_prev(self, leaf: bytes) -> str:
        """The prev field the range's first entry names (the caller checks the link)."""
        try:
            value = json.loads(leaf)["prev"]
        except (ValueError, KeyError, TypeError):
            return ""
        return value if isinstance(value, str) else ""

    def _exchange(self, row: Mapping[str, Any], leaf: bytes, findings: list[Any]) -> None:
        prev = typed(str, self.prev)
        chain = self.task.chain_id
        full: Mapping[str, Any] = row
        body = None
        if row["id"] is not None:
            if fast_leaf(chain, self.position, prev, row, findings, self.keys.hmac_key) == leaf:
                return
            self.result.rechecked += 1
            full, body, rebuilt = _exact(chain, self.position, prev, row, findings, self.keys)
            if rebuilt == leaf:
                return
        task = self.task
        self._note(diagnose_exchange(task.chain_id, task.erasures, self.position, prev, full,
                                     leaf, body))

    def _event(self, row: Mapping[str, Any], leaf: bytes) -> None:
        self._note(diagnose_event(self.task.chain_id, self.position, typed(str, self.prev),
                                  row, leaf))

    def _note(self, found: tuple[Problem | None, int | None]) -> None:
        problem, named_seq = found
        if named_seq is not None and named_seq != self.position:
            self.result.misplaced.append((self.position, named_seq))
        if problem is not None:
            self.result.add(problem)


def _exact(chain: str, seq: int, prev: str, row: Mapping[str, Any], findings: list[Any],
           keys: AuditKeys) -> tuple[dict[str, Any], dict[str, Any] | None, bytes | None]:
    """The row as the database gives it back (JSON decoded), and the body and leaf the
    chain's own functions build from it (None: a value no record could hold)."""
    full = dict(row)
    for name in JSON_COLUMNS:
        raw = full.pop(f"raw_{name}")
        full[name] = None if raw is None else json.loads(raw)
    try:
        body = exchange_body(full, findings, keys)
        return full, body, leaf_text(chain, seq, prev, "exchange", body)
    except (ValueError, TypeError, RecursionError):
        return full, None, None


def _exchange_ref(row: Mapping[str, Any]) -> str | None:
    return str(row["audit_ref"]) if row["audit_kind"] == "exchange" else None
