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
import hmac
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.events import erasure_mac
from gateway.audit.keys import AuditKeys
from gateway.audit.verify_diff import Erasures, Problem, erasures_of
from gateway.audit.verify_notes import NoteSource, default_vkey, route_notes
from gateway.audit.verify_receipts import Held, ReceiptSource, open_receipts
from gateway.audit.verify_report import KEEP, ChainReport, ChainState, Report, chain_report
from gateway.audit.verify_scan import (
    ENTRIES,
    EXCHANGES,
    RangeResult,
    RangeTask,
    scan_range,
    scan_range_async,
)
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain, AuditCheckpoint
from gateway.db.session import create_engine

__all__ = [
    "ChainReport", "NoteSource", "Problem", "ReceiptSource", "Report", "Verification",
    "VerifyUsageError", "verify",
]

CHAINS = cast(Table, AuditChain.__table__)
CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
#: entries per unit of work; a log no longer than two of them is verified in this process
RANGE = 25_000

Progress = Callable[[int, int], None]


class VerifyUsageError(ValueError):
    """What was asked cannot be verified (a chain that is not there): a usage error."""


async def _chains(connection: AsyncConnection, only: str | None) -> list[ChainState]:
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
    return [ChainState(n, heads.get(n), *stats.get(n, (0, 0))) for n in names]


async def _erasures(connection: AsyncConnection, keys: AuditKeys
                    ) -> tuple[Erasures, list[Problem]]:
    """The erasures events of every chain vouch for, and the events whose mac does not
    verify with the HMAC key (made without it: they excuse nothing)."""
    query = select(ENTRIES.c.chain_id, ENTRIES.c.seq, ENTRIES.c.leaf).where(
        ENTRIES.c.kind == "erasure")
    details, forged = [], []
    for chain_id, seq, leaf in await connection.execute(query):
        try:
            detail = json.loads(leaf)["body"]["detail"]
        except (ValueError, KeyError, TypeError):
            continue  # the scan says the entry is broken
        if _vouched(keys, detail):
            details.append(detail)
        else:
            forged.append(Problem("erasure_forged", chain_id, int(seq), None,
                                  "an erasure event whose mac does not verify with the HMAC "
                                  "key (made without it): it excuses nothing"))
    return erasures_of(details), forged


def _vouched(keys: AuditKeys, detail: object) -> bool:
    if not isinstance(detail, dict) or not isinstance(detail.get("exchanges"), dict):
        return False
    mac = detail.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, erasure_mac(keys, detail))


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
    # kind || '' : the planner must probe by ref (SQLite took the kind index: n squared)
    chained = exists().where(ENTRIES.c.ref == EXCHANGES.c.id,
                             (ENTRIES.c.kind + "") == "exchange")
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


async def _no_chain(connection: AsyncConnection) -> list[Problem]:
    """Exchange rows and no chain at all: the chain was removed (or never began)."""
    rows = (await connection.execute(select(func.count()).select_from(EXCHANGES))).scalar()
    if not rows:
        return []
    return [Problem("missing_chain", None, None, None,
                    f"{rows:,} exchange rows and no audit chain: the chains were deleted "
                    "(or the gateway never started on this database)")]


@dataclass(frozen=True)
class Verification:
    """What to verify: the database, the audit section (keys, origin), a chain or all,
    checkpoint notes from outside (files), the verifier key (None: the one of the keys)."""

    url: str
    audit: AuditConfig
    chain: str | None = None
    notes: Sequence[NoteSource] = ()
    vkey: str | None = None
    receipts: Sequence[ReceiptSource] = ()
    #: processes for a long log (None: one a core) and entries per unit of work
    workers: int | None = None
    span: int = RANGE


async def verify(job: Verification, progress: Progress | None = None) -> Report:
    """Recompute everything ``job`` names; the report says what broke, first."""
    started = asyncio.get_running_loop().time()
    keys = AuditKeys.load(job.audit, create=False)
    engine = create_engine(job.url)
    try:
        async with engine.connect() as connection:
            chains = await _chains(connection, job.chain)
            erasures, forged = await _erasures(connection, keys)
            stored = await _stored_notes(connection)
            unchained = await _unchained(connection, [c.chain_id for c in chains])
            if not chains:
                unchained += await _no_chain(connection)
    finally:
        await engine.dispose()
    key = job.vkey or default_vkey(job.audit)
    report = Report()
    names = [c.chain_id for c in chains]
    held, bad = open_receipts(job.audit, key, job.receipts)
    routed, stray = route_notes(job.audit, names, job.notes)
    report.problems.extend(stray + [p for p in bad if p.chain not in names])
    results = await _scan(job, chains, erasures, progress)
    for chain in chains:
        name = chain.chain_id
        mine = [receipt for receipt in held if receipt.chain == name]
        notes = stored.get(name, []) + routed.get(name, []) + [r.note for r in mine]
        found = chain_report(job.audit, key, chain, results[name], notes, mine)
        found.problems = sorted(found.problems + [p for p in bad + forged if p.chain == name],
                                key=lambda p: (p.seq is None, p.seq or 0))
        report.chains.append(found)
    report.problems.extend(unchained)
    report.problems.extend(_stray_receipts(held, names))
    report.seconds = asyncio.get_running_loop().time() - started
    return report


def _stray_receipts(held: Sequence[Held], names: Sequence[str]) -> list[Problem]:
    return [Problem("receipt_chain", receipt.chain, receipt.seq, receipt.request_id,
                    f"{receipt.name}: its chain is not in this database")
            for receipt in held if receipt.chain not in names]


async def _stored_notes(connection: AsyncConnection) -> dict[str, list[NoteSource]]:
    found: dict[str, list[NoteSource]] = {}
    query = select(CHECKPOINTS).order_by(CHECKPOINTS.c.chain_id, CHECKPOINTS.c.size)
    for row in (await connection.execute(query)).mappings():
        source = NoteSource(f"stored checkpoint {row['size']}", row["note"], dict(row))
        found.setdefault(row["chain_id"], []).append(source)
    return found


def _tasks(job: Verification, chain: ChainState, erasures: Erasures) -> list[RangeTask]:
    """Ranges of ``span`` entries by the entry count, the last one open to the highest seq:
    a gap in seq (a forged entry far out) is one range's ``deleted`` problem, never a
    range for each ``span`` of the gap."""
    if chain.count == 0:
        return []
    starts = list(range(0, chain.count, job.span))
    ends = [*starts[1:], chain.end]
    return [RangeTask(job.url, job.audit, chain.chain_id, start, max(end, start), erasures)
            for start, end in zip(starts, ends, strict=True)]


async def _scan(job: Verification, chains: list[ChainState], erasures: Erasures,
                progress: Progress | None) -> dict[str, list[RangeResult]]:
    tasks = {c.chain_id: _tasks(job, c, erasures) for c in chains}
    total = sum(c.count for c in chains)
    done = [0]

    def count(result: RangeResult) -> RangeResult:
        done[0] += result.count
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


