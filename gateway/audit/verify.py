"""``gateway audit verify``: recompute every chain from the tables and say where it broke.

For each chain: every entry's hash, position and link, and each exchange entry's leaf rebuilt
from the exchange row and its findings as they stand (``verify_scan``, in a process pool over
ranges of the chain when it is long); the content commitments, excused only by an erasure
event (``verify_diff``); the head row against the last entry; then the Merkle root at each
checkpoint's size (the stored ones and the files given), each signature with the verifier
key, and each a prefix of the log as it is now (``verify_notes``). Across chains: every
exchange row received since the first chain began has an entry.

The first broken place per chain is the problem of lowest sequence number found; a few more
follow it in the report.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.leaf import ZERO_HASH
from gateway.audit.verify_diff import Erasures, Problem, erasures_of
from gateway.audit.verify_notes import NoteSource, check_notes, default_vkey, route_notes
from gateway.audit.verify_scan import (
    ENTRIES,
    EXCHANGES,
    RangeResult,
    RangeTask,
    scan_range,
    scan_range_async,
)
from gateway.audit.verify_tree import Tree
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain, AuditCheckpoint
from gateway.db.session import create_engine

CHAINS = cast(Table, AuditChain.__table__)
CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
#: entries per unit of work; a log no longer than two of them is verified in this process
RANGE = 25_000
#: problems per chain in the report (the first is what matters)
KEEP = 20

Progress = Callable[[int, int], None]


class VerifyUsageError(ValueError):
    """What was asked cannot be verified (a chain that is not there): a usage error."""


@dataclass
class ChainReport:
    chain: str
    #: entries in the log (the highest seq + 1), as the head row says
    entries: int = 0
    head_size: int | None = None
    exchanges: int = 0
    events: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain, "ok": not self.problems, "entries": self.entries,
            "head_size": self.head_size, "exchanges": self.exchanges, "events": self.events,
            "checkpoints": self.checkpoints,
            "first": self.first.to_json() if self.first else None,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass
class Report:
    chains: list[ChainReport] = field(default_factory=list)
    #: problems of no one chain: exchange rows no chain has, checkpoints of no chain here
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(not c.problems for c in self.chains)

    @property
    def entries(self) -> int:
        return sum(c.entries for c in self.chains)

    def broken(self) -> list[Problem]:
        """The first broken place of each broken chain, then the problems of no chain."""
        return [c.problems[0] for c in self.chains if c.problems] + self.problems[:1]

    def to_json(self) -> dict[str, Any]:
        rate = self.entries / self.seconds if self.seconds > 0 else None
        return {
            "ok": self.ok, "entries": self.entries, "seconds": round(self.seconds, 3),
            "entries_per_second": round(rate) if rate else None,
            "chains": [c.to_json() for c in self.chains],
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class _Chain:
    chain_id: str
    head: tuple[int, str] | None
    #: the highest seq + 1 and the count of entries
    end: int
    count: int


async def _chains(connection: AsyncConnection, only: str | None) -> list[_Chain]:
    heads = {
        row.chain_id: (int(row.size), str(row.head))
        for row in await connection.execute(select(CHAINS.c.chain_id, CHAINS.c.size,
                                                   CHAINS.c.head))
    }
    stats = {
        row[0]: (int(row[1]) + 1, int(row[2]))
        for row in await connection.execute(
            select(ENTRIES.c.chain_id, func.max(ENTRIES.c.seq), func.count())
            .group_by(ENTRIES.c.chain_id)
        )
    }
    names = sorted(set(heads) | set(stats))
    if only is not None:
        if only not in names:
            raise VerifyUsageError(f"there is no audit chain {only!r} in this database "
                                   f"(chains: {', '.join(names) or 'none'})")
        names = [only]
    return [_Chain(n, heads.get(n), *stats.get(n, (0, 0))) for n in names]


async def _erasures(connection: AsyncConnection) -> Erasures:
    query = select(ENTRIES.c.leaf).where(ENTRIES.c.kind == "erasure")
    bodies = []
    for (leaf,) in await connection.execute(query):
        try:
            body = json.loads(leaf).get("body")
        except (ValueError, AttributeError):
            continue  # the scan says the entry is broken
        if isinstance(body, dict):
            bodies.append(body)
    return erasures_of(bodies)


async def _chain_began(connection: AsyncConnection, chains: list[str]) -> datetime | None:
    """When the earliest chained exchange was received: the rows from then on are chained."""
    earliest: datetime | None = None
    for chain in chains:
        query = (
            select(ENTRIES.c.leaf)
            .where(ENTRIES.c.chain_id == chain, ENTRIES.c.kind == "exchange")
            .order_by(ENTRIES.c.seq)
            .limit(1)
        )
        leaf = (await connection.execute(query)).scalar()
        if leaf is None:
            continue
        try:
            received = datetime.fromisoformat(json.loads(leaf)["body"]["received_at"])
        except (TypeError, ValueError, KeyError):
            continue  # no exchange yet, or a broken leaf the scan reports
        earliest = received if earliest is None else min(earliest, received)
    return earliest


async def _unchained(connection: AsyncConnection, chains: list[str]) -> list[Problem]:
    """Exchange rows received since the first chained one that no chain has an entry for."""
    since = await _chain_began(connection, chains)
    if since is None:
        return []
    chained = exists().where(ENTRIES.c.ref == EXCHANGES.c.id, ENTRIES.c.kind == "exchange")
    query = (
        select(EXCHANGES.c.id, EXCHANGES.c.received_at)
        .where(EXCHANGES.c.received_at >= since, ~chained)
        .order_by(EXCHANGES.c.received_at)
        .limit(KEEP)
    )
    return [
        Problem("inserted", None, None, row.id,
                f"an exchange row (received {row.received_at.isoformat()}) that no chain has "
                "an entry for: put in the table, not recorded")
        for row in await connection.execute(query)
    ]


@dataclass(frozen=True)
class Verification:
    """What to verify: the database, the audit section (keys, origin), a chain or all,
    checkpoint notes from outside (files), the verifier key (None: the one of the keys)."""

    url: str
    audit: AuditConfig
    chain: str | None = None
    notes: Sequence[NoteSource] = ()
    vkey: str | None = None
    #: processes for a long log (None: one a core) and entries per unit of work
    workers: int | None = None
    span: int = RANGE


async def verify(job: Verification, progress: Progress | None = None) -> Report:
    """Recompute everything ``job`` names; the report says what broke, first."""
    started = asyncio.get_running_loop().time()
    engine = create_engine(job.url)
    try:
        async with engine.connect() as connection:
            chains = await _chains(connection, job.chain)
            erasures = await _erasures(connection)
            stored = await _stored_notes(connection)
            unchained = await _unchained(connection, [c.chain_id for c in chains])
    finally:
        await engine.dispose()
    key = job.vkey or default_vkey(job.audit)
    report = Report()
    routed, stray = route_notes(job.audit, [c.chain_id for c in chains], job.notes)
    report.problems.extend(stray)
    results = await _scan(job, chains, erasures, progress)
    for chain in chains:
        notes = stored.get(chain.chain_id, []) + routed.get(chain.chain_id, [])
        report.chains.append(_report(key, job, chain, results[chain.chain_id], notes))
    report.problems.extend(unchained)
    report.seconds = asyncio.get_running_loop().time() - started
    return report


async def _stored_notes(connection: AsyncConnection) -> dict[str, list[NoteSource]]:
    found: dict[str, list[NoteSource]] = {}
    query = select(CHECKPOINTS).order_by(CHECKPOINTS.c.chain_id, CHECKPOINTS.c.size)
    for row in (await connection.execute(query)).mappings():
        source = NoteSource(f"stored checkpoint {row['size']}", row["note"], dict(row))
        found.setdefault(row["chain_id"], []).append(source)
    return found


def _tasks(job: Verification, chain: _Chain, erasures: Erasures) -> list[RangeTask]:
    return [
        RangeTask(job.url, job.audit, chain.chain_id, start, min(start + job.span, chain.end),
                  erasures)
        for start in range(0, chain.end, job.span)
    ]


async def _scan(job: Verification, chains: list[_Chain], erasures: Erasures,
                progress: Progress | None) -> dict[str, list[RangeResult]]:
    tasks = {c.chain_id: _tasks(job, c, erasures) for c in chains}
    total = sum(c.end for c in chains)
    done = [0]

    def count(result: RangeResult) -> RangeResult:
        done[0] += result.end - result.start
        if progress is not None:
            progress(done[0], total)
        return result

    workers = job.workers or os.cpu_count() or 1
    if workers <= 1 or total <= 2 * job.span:
        return {name: [count(await scan_range_async(t)) for t in group]
                for name, group in tasks.items()}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return {name: await _in_pool(pool, group, count) for name, group in tasks.items()}


async def _in_pool(pool: Executor, tasks: list[RangeTask],
                   count: Callable[[RangeResult], RangeResult]) -> list[RangeResult]:
    loop = asyncio.get_running_loop()
    futures = [loop.run_in_executor(pool, scan_range, task) for task in tasks]
    for future in futures:
        future.add_done_callback(lambda f: None if f.cancelled() or f.exception()
                                 else count(f.result()))
    return list(await asyncio.gather(*futures))


def _report(key: str, job: Verification, chain: _Chain, results: list[RangeResult],
            notes: list[NoteSource]) -> ChainReport:
    report = ChainReport(chain.chain_id, chain.end, chain.head[0] if chain.head else None)
    tree = Tree(sorted(_sizes(notes)))
    problems: list[Problem] = []
    last: str | None = None
    for index, result in enumerate(results):
        report.exchanges += result.exchanges
        report.events += result.events
        problems.extend(_link(chain.chain_id, result, last, index == 0))
        problems.extend(result.problems)
        tree.extend(result.hashes)
        last = result.last_hash if result.last_hash is not None else last
    _resolve_misplaced(problems, [m for r in results for m in r.misplaced])
    problems.extend(_head(chain, last))
    report.checkpoints = len(notes)
    problems.extend(check_notes(job.audit, key, chain.chain_id, tree, notes))
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    report.problems = problems[:KEEP]
    return report


def _sizes(notes: list[NoteSource]) -> set[int]:
    sizes = set()
    for note in notes:
        size = note.size()
        if size is not None:
            sizes.add(size)
    return sizes


def _link(chain: str, result: RangeResult, last: str | None, first: bool) -> list[Problem]:
    """The range's first entry names the hash of the entry before it (zeros for entry 0)."""
    if result.first_prev is None:
        return []
    expected = ZERO_HASH if first else last
    if expected is None or result.first_prev == expected:
        return []
    return [Problem("edited", chain, result.start, None,
                    "its prev is not the previous entry's hash (an entry before it was "
                    "rewritten, removed or put in)")]


def _resolve_misplaced(problems: list[Problem], misplaced: list[tuple[int, int]]) -> None:
    """A leaf naming another position is reordered when the entries out of place form a
    cycle through it (each at the place another names); else entries before it were removed
    (it names a later seq) or put in (an earlier one), and the rest renumbered."""
    names = dict(misplaced)
    for index, problem in enumerate(problems):
        if problem.kind != "reordered" or problem.seq is None:
            continue
        if _in_cycle(problem.seq, names):
            continue
        named = names.get(problem.seq)
        kind = "deleted" if named is not None and named > problem.seq else "inserted"
        why = ("entries before it were removed and the rest renumbered" if kind == "deleted"
               else "an entry was put in before it")
        problems[index] = Problem(kind, problem.chain, problem.seq, problem.exchange,
                                  f"{problem.detail}: {why}")


def _in_cycle(start: int, names: dict[int, int]) -> bool:
    place = names.get(start)
    for _ in range(len(names)):
        if place is None:
            return False
        if place == start:
            return True
        place = names.get(place)
    return False


def _head(chain: _Chain, last: str | None) -> list[Problem]:
    """The head row against the log: its size and its hash."""
    name = chain.chain_id
    if chain.head is None:
        return [Problem("head", name, None, None, "the chain has entries but no head row")]
    size, head = chain.head
    if size < chain.end:
        return [Problem("inserted", name, size, None,
                        f"{chain.end - size} entries beyond the head (it says {size})")]
    if size > chain.end:
        return [Problem("truncated", name, chain.end, None,
                        f"the head says {size} entries; the log has {chain.end}")]
    if head != (last or ZERO_HASH):
        return [Problem("head", name, max(size - 1, 0), None,
                        "the head row's hash is not the last entry's")]
    return []
