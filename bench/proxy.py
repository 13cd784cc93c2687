"""How much the gateway adds: the mock upstream called directly, and through the gateway.

Starts `gateway mock-upstream` and `gateway serve` (one worker, uvloop + httptools, recording
on, SQLite unless GATEWAY_DATABASE_URL says otherwise) as separate processes on loopback,
then drives both with an aiohttp load generator at concurrency 1 and 32, non-streaming
(whole-request latency) and streaming (time to first byte). Prints requests per second and
latency percentiles, and the gateway's added latency (p50 through the gateway minus p50
direct).

    python bench/proxy.py [--duration 5] [--transport aiohttp|httpx]

The load generator shares this 2-core machine with both servers, so absolute figures are
lower than on separate hosts; compare the rows with each other, and quote medians of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import Gateway, cli, free_port, process

BODY = {"model": "m", "messages": [{"role": "user", "content": "Say something short."}]}


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        if stream:
            await response.content.readany()
            elapsed = time.perf_counter() - started
            await response.read()
            return elapsed
        await response.read()
        return time.perf_counter() - started


async def load(
    name: str,
    url: str,
    key: str | None,
    model: str,
    *,
    stream: bool,
    concurrency: int,
    duration: float,
) -> Result:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = json.dumps({**BODY, "model": model, "stream": stream}).encode()
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        for _ in range(20):  # warm up connections and caches
            await one(session, url, body, stream)
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                try:
                    latencies.append(await one(session, url, body, stream))
                except (RuntimeError, aiohttp.ClientError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, concurrency, len(latencies), seconds, latencies, errors)


BENCH_POLICY = """\
context: bench
purpose: Measure the proxy itself.
owner: bench@situate.invalid
audience: the benchmark
models: {allow: [bench]}
"""


def start_servers(
    folder: Path, transport: str, extra: dict[str, str] | None = None
) -> tuple[list[object], str, Gateway]:
    """The mock upstream and a gateway with the ``bench`` context (and ``extra`` policy files,
    each of which gets a key too)."""
    mock_port, gateway_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    policies = folder / "policies"
    policies.mkdir()
    (policies / "bench.yaml").write_text(BENCH_POLICY)
    for name, text in (extra or {}).items():
        (policies / name).write_text(text)
    config = folder / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backends": {"mock": {"base_url": f"{mock_url}/v1"}},
                "models": {"bench": {"backend": "mock", "model": "mock-small"}},
                "upstream": {"transport": transport},
                "recording": {"spill_dir": str(folder / "spill")},
                "policies_dir": str(policies),
            }
        )
    )
    env = {
        "GATEWAY_DATABASE_URL": os.environ.get(
            "GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        )
    }
    assert cli(["db", "upgrade", "--config", str(config)], env).returncode == 0
    keys = {}
    for context in ["bench", *(Path(name).stem for name in extra or {})]:
        made = cli(
            ["keys", "create", "--context", context, "--name", "bench", "--config", str(config)],
            env,
        )
        keys[context] = made.stdout.strip()
    key = keys["bench"]
    contexts = [
        process(
            ["mock-upstream", "--port", str(mock_port)], f"{mock_url}/healthz", folder / "mock.log"
        ),
        process(
            ["serve", "--config", str(config), "--port", str(gateway_port)],
            f"http://127.0.0.1:{gateway_port}/readyz",
            folder / "gateway.log",
            env,
        ),
    ]
    gateway = Gateway(
        f"http://127.0.0.1:{gateway_port}",
        key,
        dict(env),
        config,
        "sqlite",
        keys,
        policies,
    )
    return contexts, mock_url, gateway


def report(results: list[Result]) -> None:
    print(
        f"{'target':<9} {'mode':<10} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6}"
    )
    for r in results:
        mode = r.name.split("/")[1]
        print(
            f"{r.name.split('/')[0]:<9} {mode:<10} {r.concurrency:>3} {r.rps:>8.0f} "
            f"{r.pct(0.5):>8.2f} {r.pct(0.99):>8.2f} {r.errors:>6}"
        )
    print()
    pairs = {(r.name, r.concurrency): r for r in results}
    for mode in ("whole", "ttfb"):
        for c in sorted({r.concurrency for r in results}):
            direct, via = pairs[(f"direct/{mode}", c)], pairs[(f"gateway/{mode}", c)]
            print(
                f"added latency {mode:<5} c={c:<3} p50 {via.pct(0.5) - direct.pct(0.5):+.2f} ms"
                f"  p99 {via.pct(0.99) - direct.pct(0.99):+.2f} ms"
                f"  throughput ratio {via.rps / direct.rps:.2f}"
            )


async def scenarios(mock_url: str, gateway: Gateway, duration: float) -> list[Result]:
    results = []
    for concurrency in (1, 32):
        for stream, mode in ((False, "whole"), (True, "ttfb")):
            for name, url, key, model in (
                ("direct", f"{mock_url}/v1/chat/completions", None, "mock-small"),
                ("gateway", f"{gateway.v1}/chat/completions", gateway.key, "bench"),
            ):
                results.append(
                    await load(
                        f"{name}/{mode}",
                        url,
                        key,
                        model,
                        stream=stream,
                        concurrency=concurrency,
                        duration=duration,
                    )
                )
    return results


def count_records(path: Path) -> int | str:
    if not path.exists():
        return "n/a (not SQLite)"
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT count(*) FROM exchanges").fetchone()[0]
        return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--transport", choices=["aiohttp", "httpx"], default="aiohttp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        contexts, mock_url, gateway = start_servers(Path(tmp), args.transport)
        with contexts[0], contexts[1]:  # type: ignore[attr-defined]
            results = uvloop.run(scenarios(mock_url, gateway, args.duration))
        recorded = count_records(Path(tmp) / "bench.db")
        print(
            f"transport={args.transport} duration={args.duration}s per scenario, "
            f"{statistics.mean([r.seconds for r in results]):.1f}s measured each"
        )
        report(results)
        sent = sum(r.requests + 20 for r in results if r.name.startswith("gateway"))
        print(f"\nexchange records written (after shutdown): {recorded} of {sent} requests")


if __name__ == "__main__":
    main()
