"""``gateway audit verify`` over a million chained exchanges on SQLite.

Builds a fresh database with the migrations and fills it with realistic exchanges (four chat
messages and an answer each, a decision with notes, attempts, a finding on every fifth; the
rows tests/audit/verifying.py writes), chained as the chain chains them: each body by
``exchange_body`` in a pool of processes, then in order each leaf by ``leaf_text`` with its
sequence number and the previous hash, ``entry_hash``, and the rows, findings, entries and
head row written in one transaction a batch (one writer: no sequencer lock to take). Then
times ``verify`` over it several times and prints the build time, each run, the median,
records per second and the peak memory of the verifier and its workers.

    python bench/audit_verify.py              # 1,000,000 exchanges, 3 runs
    python bench/audit_verify.py --count 100000 --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, update

from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import ZERO_HASH, entry_hash, exchange_body, leaf_text
from gateway.audit.verify import Verification, verify
from gateway.config.observe import AuditConfig
from gateway.db import migrate
from gateway.db.models import ApiKey, AuditChain, AuditEntry, Exchange, Finding
from gateway.db.session import Sessions, create_engine, create_sessions
from tests.audit.verifying import KEYS, START, audit_config, exchange, key_row

BATCH = 5_000


def _bodies(audit: AuditConfig, start: int, end: int) -> list[dict[str, Any]]:
    """The leaf bodies of exchanges start..end-1 (a worker's part)."""
    keys = AuditKeys.load(audit, create=False)
    bodies = []
    for index in range(start, end):
        entry = exchange(index)
        bodies.append(exchange_body(entry.row, entry.findings, keys))
    return bodies


async def _write(sessions: Sessions, chain: str, start: int, bodies: list[dict[str, Any]],
                 head: str) -> str:
    entries = [exchange(index) for index in range(start, start + len(bodies))]
    rows = []
    for offset, body in enumerate(bodies):
        leaf = leaf_text(chain, start + offset, head, "exchange", body)
        head = entry_hash(leaf)
        rows.append({"chain_id": chain, "seq": start + offset, "kind": "exchange",
                     "ref": body["id"], "leaf": leaf.decode(), "entry_hash": head,
                     "created_at": START})
    async with sessions.begin() as session:
        await session.execute(insert(Exchange), [e.row for e in entries])
        findings = [f for e in entries for f in e.findings]
        if findings:
            await session.execute(insert(Finding), findings)
        await session.execute(insert(AuditEntry), rows)
        await session.execute(update(AuditChain).values(size=start + len(rows), head=head))
    return head


async def build(url: str, audit: AuditConfig, count: int) -> float:
    started = time.perf_counter()
    engine = create_engine(url)
    sessions = create_sessions(engine)
    async with sessions.begin() as session:
        await session.execute(insert(ApiKey), [key_row(i) for i in range(KEYS)])
        await session.execute(insert(AuditChain), [{
            "chain_id": audit.chain_id, "size": 0, "head": ZERO_HASH,
            "created_at": START, "updated_at": START,
        }])
    loop = asyncio.get_running_loop()
    head = ZERO_HASH
    with ProcessPoolExecutor() as pool:
        parts = [loop.run_in_executor(pool, _bodies, audit, start, min(start + BATCH, count))
                 for start in range(0, count, BATCH)]
        for number, part in enumerate(parts):
            head = await _write(sessions, audit.chain_id, number * BATCH, await part, head)
            if number % 20 == 19:
                done = (number + 1) * BATCH
                rate = done / (time.perf_counter() - started)
                print(f"  built {done:,} / {count:,} ({rate:,.0f}/s)", flush=True)
    await engine.dispose()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/audit.db"
        migrate.upgrade(url)
        audit = audit_config(Path(folder))
        print(f"building {args.count:,} chained exchanges on SQLite:")
        built = asyncio.run(build(url, audit, args.count))
        size = Path(f"{folder}/audit.db").stat().st_size / 2**20
        print(f"built in {built:.1f} s ({args.count / built:,.0f}/s), {size:,.0f} MiB")
        times = []
        for number in range(args.runs):
            seconds, cpu, entries = asyncio.run(run(url, audit))
            times.append(seconds)
            print(f"  verify run {number + 1}: {seconds:.1f} s ({entries / seconds:,.0f}/s), "
                  f"{cpu:.1f} CPU s ({cpu / entries * 1e6:.0f} µs a record)")
        median = statistics.median(times)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"verify: median {median:.1f} s over {args.runs} runs, "
              f"{args.count / median:,.0f} records/s; peak memory {own:,.0f} MiB "
              f"(this process), {workers:,.0f} MiB (the largest worker)")


if __name__ == "__main__":
    main()
