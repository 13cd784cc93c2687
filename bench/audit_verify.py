"""``gateway audit verify`` over a million chained exchanges on SQLite.

Builds a fresh database with the migrations and fills it with realistic exchanges (four chat
messages and an answer each, a decision with notes, attempts, a finding on every fifth; the
rows tests/audit/verifying.py writes), chained as the chain chains them: each body by
``exchange_body`` in a pool of processes, with the rows as the engine's type processors bind
them, then in order each leaf by ``leaf_text`` with its sequence number and the previous
hash, ``entry_hash``, and the rows, findings, entries and head row written in one transaction
a batch, an executemany a table over one sqlite3 connection (one writer: no sequencer lock
to take; the ORM's per-row inserts made it 1,000 records a second, this 4,000). Then
times ``verify`` over it several times and prints the build time, each run, the median,
records per second and the peak memory of the verifier and its workers.

    python bench/audit_verify.py              # 1,000,000 exchanges, 3 runs
    python bench/audit_verify.py --count 100000 --runs 1
    python bench/audit_verify.py --folder /tmp/audit-1m   # kept: verify again without a build
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Table, insert
from sqlalchemy.dialects import sqlite

from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import ZERO_HASH, entry_hash, exchange_body, leaf_text
from gateway.audit.verify import Verification, verify
from gateway.config.observe import AuditConfig
from gateway.db import migrate, safe_json
from gateway.db.models import ApiKey, AuditChain, AuditEntry, Exchange, Finding
from gateway.db.session import create_engine, create_sessions
from tests.audit.verifying import KEYS, START, audit_config, exchange, key_row

BATCH = 5_000


#: a worker's part: the rows of each table as SQLite parameters, and the leaf bodies
Part = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]
#: parts in the pool at once: enough to keep both cores busy, few enough to bound memory
AHEAD = 4


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _params(table: Table, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as the gateway's engine binds them (its dialect's type processors and JSON
    serializer: times and JSON text as the recorder stores them)."""
    dialect = sqlite.dialect(json_serializer=safe_json.dumps)
    processors = [(column.key, column.type.bind_processor(dialect)) for column in table.c]
    return [tuple(value if process is None else process(value)
                  for key, process in processors for value in (row.get(key),))
            for row in rows]


def _sql(table: Table) -> str:
    names = [column.name for column in table.c]
    return (f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})")


def _part(audit: AuditConfig, start: int, end: int) -> Part:
    """Exchanges start..end-1 with their leaf bodies (a worker's part)."""
    keys = AuditKeys.load(audit, create=False)
    rows, findings, bodies = [], [], []
    for index in range(start, end):
        entry = exchange(index)
        rows.append(entry.row)
        findings.extend(entry.findings)
        bodies.append(exchange_body(entry.row, entry.findings, keys))
    return _params(_table(Exchange), rows), _params(_table(Finding), findings), bodies


def _write(db: sqlite3.Connection, chain: str, start: int, part: Part, head: str) -> str:
    """The part and its chain entries in one transaction, each table in one executemany."""
    exchanges, findings, bodies = part
    rows = []
    for offset, body in enumerate(bodies):
        leaf = leaf_text(chain, start + offset, head, "exchange", body)
        head = entry_hash(leaf)
        rows.append({"chain_id": chain, "seq": start + offset, "kind": "exchange",
                     "ref": body["id"], "leaf": leaf.decode(), "entry_hash": head,
                     "created_at": START})
    with db:
        db.executemany(_sql(_table(Exchange)), exchanges)
        db.executemany(_sql(_table(Finding)), findings)
        db.executemany(_sql(_table(AuditEntry)), _params(_table(AuditEntry), rows))
        db.execute("UPDATE audit_chains SET size = ?, head = ? WHERE chain_id = ?",
                   (start + len(rows), head, chain))
    return head


async def _first_rows(url: str, audit: AuditConfig) -> None:
    """The API keys and the chain's head row, through the engine."""
    engine = create_engine(url)
    sessions = create_sessions(engine)
    async with sessions.begin() as session:
        await session.execute(insert(ApiKey), [key_row(i) for i in range(KEYS)])
        await session.execute(insert(AuditChain), [{
            "chain_id": audit.chain_id, "size": 0, "head": ZERO_HASH,
            "created_at": START, "updated_at": START,
        }])
    await engine.dispose()


def build(path: Path, audit: AuditConfig, count: int) -> float:
    """Exchanges made and their bodies built in a pool, written in order with their leaves
    over one sqlite3 connection (executemany of the engine's parameters: the bytes the
    recorder stores)."""
    started = time.perf_counter()
    asyncio.run(_first_rows(f"sqlite+aiosqlite:///{path}", audit))
    head = ZERO_HASH
    starts = list(range(0, count, BATCH))
    with ProcessPoolExecutor() as pool, closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        pending = [pool.submit(_part, audit, s, min(s + BATCH, count)) for s in starts[:AHEAD]]
        for number, first in enumerate(starts):
            part = pending.pop(0).result()
            if number + AHEAD < len(starts):
                later = starts[number + AHEAD]
                pending.append(pool.submit(_part, audit, later, min(later + BATCH, count)))
            head = _write(db, audit.chain_id, first, part, head)
            if number % 20 == 19:
                done = (number + 1) * BATCH
                rate = done / (time.perf_counter() - started)
                print(f"  built {done:,} / {count:,} ({rate:,.0f}/s)", flush=True)
    return time.perf_counter() - started


def _cpu() -> float:
    """CPU seconds of this process and its finished workers."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


async def run(url: str, audit: AuditConfig) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), _cpu()
    report = await verify(Verification(url, audit))
    assert report.ok, report.to_json()
    return time.perf_counter() - started, _cpu() - cpu, report.entries


def _prepare(folder: Path, count: int) -> tuple[str, AuditConfig]:
    """The database in ``folder``, built unless it is there (a ``--folder`` kept from a
    run before), and the audit section with its keys."""
    database = folder / "audit.db"
    url = f"sqlite+aiosqlite:///{database}"
    if database.exists():
        print(f"verifying the database already in {folder}")
        return url, audit_config(folder)
    migrate.upgrade(url)
    audit = audit_config(folder)
    print(f"building {count:,} chained exchanges on SQLite:")
    built = build(database, audit, count)
    size = database.stat().st_size / 2**20
    print(f"built in {built:.1f} s ({count / built:,.0f}/s), {size:,.0f} MiB")
    return url, audit


def _verify_runs(url: str, audit: AuditConfig, runs: int) -> None:
    times = []
    for number in range(runs):
        seconds, cpu, entries = asyncio.run(run(url, audit))
        times.append(seconds)
        print(f"  verify run {number + 1}: {seconds:.1f} s ({entries / seconds:,.0f}/s), "
              f"{cpu:.1f} CPU s ({cpu / entries * 1e6:.0f} µs a record)", flush=True)
    median = statistics.median(times)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"verify: median {median:.1f} s over {runs} runs, {entries / median:,.0f} "
          f"records/s; peak memory {own:,.0f} MiB (this process), {workers:,.0f} MiB "
          "(the largest worker, the builder's included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None,
                        help="build in this folder and keep it; verify only when it has one")
    args = parser.parse_args()
    if args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
        _verify_runs(*_prepare(args.folder, args.count), args.runs)
        return
    with tempfile.TemporaryDirectory() as folder:
        _verify_runs(*_prepare(Path(folder), args.count), args.runs)


if __name__ == "__main__":
    main()
