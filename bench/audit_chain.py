"""The cost of chaining: the gateway's sustained throughput with ``audit.enabled`` true and
false, alternating runs.

Each run starts a fresh `gateway mock-upstream` and `gateway serve` (bench/proxy.py's
servers: one worker, recording on, SQLite) with the audit section on or off, drives it with
bench/proxy.py's aiohttp load generator (non-streaming, concurrency 32) for ``--duration``
seconds, and counts the records and chain entries written. Prints each run, the median
requests per second of each mode and their ratio (the target: chained within 10% of not).

    python bench/audit_chain.py [--runs 3] [--duration 8]

The machine's two cores are shared by the load generator, both servers and anything else
running: compare the modes' medians with each other, not with other machines.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proxy import load, start_servers
from gateway.audit.keys import AuditKeys
from gateway.config.observe import AuditConfig


def _audit_section(config: Path, enabled: bool) -> None:
    data = yaml.safe_load(config.read_text())
    data["audit"] = {"enabled": enabled, "checkpoint_dir": str(config.parent / "checkpoints")}
    config.write_text(yaml.safe_dump(data))


def _count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        found: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return found


def one_run(enabled: bool, duration: float) -> tuple[float, int, int]:
    """Requests per second with the chain on or off, and the records and entries written."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["GATEWAY_AUDIT_KEYS_DIR"] = str(folder / "audit")  # the CLI's keys too
        # made first: the CLI's `keys create` chains its event and makes no keys itself
        AuditKeys.load(AuditConfig(keys_dir=folder / "audit"), create=True)
        contexts, _, gateway = start_servers(folder, "aiohttp")
        _audit_section(gateway.config, enabled)  # read when the gateway starts, below
        with contexts[0], contexts[1]:  # type: ignore[attr-defined]
            result = uvloop.run(load("gateway", f"{gateway.url}/v1/chat/completions",
                                     gateway.key, "bench", stream=False, concurrency=32,
                                     duration=duration))
        database = folder / "bench.db"
        return result.rps, _count(database, "exchanges"), _count(database, "audit_entries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode, alternating")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    args = parser.parse_args()
    rates: dict[bool, list[float]] = {True: [], False: []}
    for number in range(args.runs):
        for enabled in (True, False) if number % 2 == 0 else (False, True):
            rps, records, entries = one_run(enabled, args.duration)
            rates[enabled].append(rps)
            mode = "chain on " if enabled else "chain off"
            print(f"  run {number + 1} {mode}: {rps:,.0f} requests/s "
                  f"({records:,} records, {entries:,} chain entries)", flush=True)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"median requests/s: chain on {on:,.0f}, chain off {off:,.0f}; "
          f"on / off = {on / off:.3f} ({(1 - on / off) * 100:+.1f}% cost)")


if __name__ == "__main__":
    main()
