"""The soak: many concurrent streams for minutes through the bank-support policy, and what holds.

Starts `gateway mock-upstream` (a ~40-word answer, one word a chunk, ``--token-delay`` between
chunks) and `gateway serve` (bank-support: its rules and scope; recording on) as processes on
loopback, then keeps ``--concurrency`` streams open for ``--duration`` seconds (each client
starts its next stream when one ends). Prints

- throughput (streams completed a second) and p50/p99 time to first byte and to the end;
- errors by kind (an HTTP status and its code, an error frame in the stream, a stream with no
  ``[DONE]``, a client-side exception);
- the gateway's RSS at the start (after warm-up), every ``--sample`` seconds, and at the end;
- records: every request's ``x-request-id`` counted in the exchanges table once the recorder
  has caught up: missing and duplicated rows (exactly one each is the promise).

    python bench/soak.py [--duration 300] [--concurrency 200] [--token-delay 0.05]
                         [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/soak]

SQLite (a file in the run's folder) unless ``--database-url`` names another database; the
bench makes its tables (``gateway db upgrade``). The load generator shares the machine with
both servers: absolute figures are lower than on separate hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.amplification import rss_mb
from tests.servers import cli, free_port, process

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "My debit card was declined at the supermarket twice this week, why?"
ANSWER = (
    "Card declines usually come from a daily limit or a fraud check. Please open the app, go "
    "to Cards, and look at the card's status and its limits; if the card is blocked you can "
    "unblock it there, or call us and we will help."
)


@dataclass
class Tally:
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)
    done: int = 0


def setup(folder: Path, mock_url: str, database_url: str) -> tuple[Path, dict[str, str], str]:
    policies = folder / "policies"
    shutil.copytree(ROOT / "policies" / "guidelines", policies / "guidelines")
    shutil.copy(ROOT / "policies" / "bank-support.yaml", policies / "bank-support.yaml")
    config = folder / "gateway.yaml"
    model = {"backend": "mock", "model": "mock-small"}
    config.write_text(
        yaml.safe_dump(
            {
                "backends": {
                    "mock": {"base_url": f"{mock_url}/v1", "timeouts": {"first_byte": 30}}
                },
                "models": {"demo-small": model, "demo-large": model},
                "recording": {"spill_dir": str(folder / "spill")},
                "policies_dir": str(policies),
            }
        )
    )
    env = {"GATEWAY_DATABASE_URL": database_url}
    upgraded = cli(["db", "upgrade", "--config", str(config)], env)
    assert upgraded.returncode == 0, upgraded.stderr
    made = cli(["keys", "create", "--context", "bank-support", "--name", "soak",
                "--config", str(config)], env)
    assert made.returncode == 0, made.stderr
    return config, env, made.stdout.strip()


async def one_stream(session: aiohttp.ClientSession, url: str, body: bytes, tally: Tally) -> None:
    started = time.perf_counter()
    first: float | None = None
    try:
        async with session.post(url, data=body) as response:
            request_id = response.headers.get("x-request-id")
            if request_id:
                tally.ids.append(request_id)
            if response.status != 200:
                try:
                    code = (await response.json()).get("error", {}).get("code")
                except (aiohttp.ContentTypeError, json.JSONDecodeError):
                    code = None
                tally.errors[f"http {response.status} {code}"] += 1
                return
            ended = False
            async for line in response.content:
                if first is None:
                    first = time.perf_counter() - started
                if line.startswith(b"data: [DONE]"):
                    ended = True
                elif line.startswith(b"data: ") and b'"error"' in line[:20]:
                    code = json.loads(line[6:]).get("error", {}).get("code")
                    tally.errors[f"stream error frame {code}"] += 1
                    return
            if not ended:
                tally.errors["stream ended without [DONE]"] += 1
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.errors[f"client {type(exc).__name__}"] += 1
        return
    tally.ttfb.append(first or 0.0)
    tally.total.append(time.perf_counter() - started)
    tally.done += 1


async def soak(
    url: str, key: str, args: argparse.Namespace, pid: int
) -> tuple[Tally, list[tuple[float, float]]]:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    body = json.dumps(
        {"model": "demo-small", "stream": True,
         "messages": [{"role": "user", "content": QUESTION}]}
    ).encode()
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    tally = Tally()
    samples: list[tuple[float, float]] = []
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        warm = Tally()
        await asyncio.gather(*(one_stream(session, url, body, warm) for _ in range(20)))
        started = time.perf_counter()
        samples.append((0.0, rss_mb(pid)))
        deadline = started + args.duration

        async def client() -> None:
            while time.perf_counter() < deadline:
                await one_stream(session, url, body, tally)

        async def sampler() -> None:
            while time.perf_counter() < deadline:
                await asyncio.sleep(min(args.sample, max(0.0, deadline - time.perf_counter())))
                samples.append((time.perf_counter() - started, rss_mb(pid)))

        await asyncio.gather(sampler(), *(client() for _ in range(args.concurrency)))
        samples.append((time.perf_counter() - started, rss_mb(pid)))
    return tally, samples


async def record_counts(database_url: str, ids: list[str], wait: float) -> tuple[int, int, int]:
    """Missing, duplicated and found rows for ``ids``, once the recorder has caught up."""
    engine = create_async_engine(database_url)
    wanted = set(ids)
    try:
        deadline = time.monotonic() + wait
        while True:
            async with engine.connect() as connection:
                rows = (
                    await connection.execute(text("SELECT id, COUNT(*) FROM exchanges GROUP BY id"))
                ).all()
            counts = {row[0]: row[1] for row in rows if row[0] in wanted}
            missing = len(wanted - counts.keys())
            if missing == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
    finally:
        await engine.dispose()
    duplicated = sum(1 for count in counts.values() if count > 1)
    return missing, duplicated, len(counts)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def report(tally: Tally, samples: list[tuple[float, float]], args: argparse.Namespace,
           counts: tuple[int, int, int]) -> None:
    sent = len(tally.ids)
    print(f"soak: {args.concurrency} concurrent streams for {args.duration:g} s, bank-support, "
          f"token delay {args.token_delay:g} s")
    print(f"  streams completed {tally.done}  ({tally.done / args.duration:.1f}/s)   "
          f"requests answered {sent}")
    print(f"  time to first byte  p50 {pct(tally.ttfb, 0.5):8.1f} ms   "
          f"p99 {pct(tally.ttfb, 0.99):8.1f} ms")
    print(f"  whole stream        p50 {pct(tally.total, 0.5):8.1f} ms   "
          f"p99 {pct(tally.total, 0.99):8.1f} ms")
    errors = sum(tally.errors.values())
    print(f"  errors {errors}" + "".join(f"\n    {n:6d}  {k}" for k, n in
                                        tally.errors.most_common()))
    line = "  ".join(f"{t:4.0f}s {mb:6.1f}" for t, mb in samples)
    print(f"  gateway RSS MB: {line}")
    first, last = samples[0][1], samples[-1][1]
    print(f"  RSS start {first:.1f} MB, end {last:.1f} MB ({last - first:+.1f} MB)")
    missing, duplicated, found = counts
    print(f"  records: {found} of {sent} request ids found, {missing} missing, "
          f"{duplicated} duplicated")
    if sent:
        print(f"  median stream length {statistics.median(tally.total) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--token-delay", type=float, default=0.05)
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--record-wait", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder / 'soak.db'}"
        mock_port, port = free_port(), free_port()
        mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{port}"
        config, env, key = setup(folder, mock_url, database_url)
        script = folder / "script.yaml"
        script.write_text(yaml.safe_dump({"echo": ANSWER}))
        mock = ["mock-upstream", "--port", str(mock_port), "--script", str(script),
                "--token-delay", str(args.token_delay)]
        serve = ["serve", "--config", str(config), "--port", str(port)]
        with (
            process(mock, f"{mock_url}/healthz", folder / "mock.log"),
            process(serve, f"{url}/readyz", folder / "gateway.log", env) as gateway,
        ):
            tally, samples = uvloop.run(
                soak(f"{url}/v1/chat/completions", key, args, gateway.pid)
            )
            counts = uvloop.run(record_counts(database_url, tally.ids, args.record_wait))
        report(tally, samples, args, counts)


if __name__ == "__main__":
    main()
