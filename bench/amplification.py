"""What a large prompt costs everyone else: bystanders' latency and the gateway's memory.

Starts `gateway mock-upstream` and `gateway serve` (the demo context: policies/demo.yaml, its
injection heuristic and model, pii, the semantic scope; recording on, SQLite) and measures

1. bystanders: a fifth client sending small requests alone, then while four clients send
   unique ~31 KB prompts without pause; its p50 and p99 in both phases, and the big prompts'
   own throughput;
2. memory: the gateway's RSS before ``--prompts`` unique 31 KB prompts (four at a time), right
   after, and after ``--idle`` seconds idle.

    python bench/amplification.py [--duration 20] [--prompts 1200] [--idle 30]
                                  [--skip-memory] [--skip-bystanders]

The load generator shares the machine with both servers: quote medians of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import cli, free_port, process

ROOT = Path(__file__).resolve().parents[1]
SMALL = "How do policies work in this gateway?"
BIG_CHARS = 31_000
#: the big prompts' errors, by message
ERRORS: Counter[str] = Counter()


def big_prompt(rng: random.Random, index: int) -> str:
    """A unique ~31 KB prompt of word-like tokens (no cache can answer it)."""
    words = []
    total = 0
    while total < BIG_CHARS:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
        words.append(word)
        total += len(word) + 1
    return f"Question {index}: " + " ".join(words)[:BIG_CHARS]


def setup(folder: Path, mock_url: str) -> tuple[Path, dict[str, str], str]:
    policies = folder / "policies"
    policies.mkdir()
    shutil.copy(ROOT / "policies" / "demo.yaml", policies / "demo.yaml")
    config = folder / "gateway.yaml"
    model = {"backend": "mock", "model": "mock-small"}
    config.write_text(
        yaml.safe_dump(
            {
                "backends": {"mock": {"base_url": f"{mock_url}/v1"}},
                "models": {"demo-small": model, "demo-large": model},
                "recording": {"spill_dir": str(folder / "spill")},
                "policies_dir": str(policies),
            }
        )
    )
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}"}
    assert cli(["db", "upgrade", "--config", str(config)], env).returncode == 0
    made = cli(["keys", "create", "--context", "demo", "--name", "bench",
                "--config", str(config)], env)
    assert made.returncode == 0, made.stderr
    return config, env, made.stdout.strip()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def ask(session: aiohttp.ClientSession, url: str, text: str) -> float:
    body = json.dumps({"model": "demo-small", "messages": [{"role": "user", "content": text}]})
    started = time.perf_counter()
    async with session.post(url, data=body) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:300]}")
    return time.perf_counter() - started


async def bystander(session: aiohttp.ClientSession, url: str, seconds: float) -> list[float]:
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        latencies.append(await ask(session, url, SMALL))
        await asyncio.sleep(0.02)  # a steady trickle, not a flood
    return latencies


async def big_clients(
    session: aiohttp.ClientSession,
    url: str,
    rng: random.Random,
    *,
    stop: asyncio.Event | None = None,
    count: int | None = None,
) -> int:
    """Four clients sending unique big prompts until ``stop`` is set or ``count`` are sent."""
    sent = 0

    def more() -> bool:
        return (count is None or sent < count) and (stop is None or not stop.is_set())

    async def client() -> None:
        nonlocal sent
        while more():
            sent += 1
            try:
                await ask(session, url, big_prompt(rng, sent))
            except (RuntimeError, aiohttp.ClientError) as exc:  # counted, not fatal
                ERRORS[str(exc)[:120]] += 1

    await asyncio.gather(*(client() for _ in range(4)))
    return sent


def summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (f"  {name:<28} n={len(ordered):<5} p50 {statistics.median(ordered) * 1000:8.1f} ms"
            f"   p99 {p99 * 1000:8.1f} ms")


async def bystanders(url: str, key: str, seconds: float) -> None:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    rng = random.Random(7)
    async with aiohttp.ClientSession(headers=headers) as session:
        for i in range(8):  # warm: connections, the encoder, the caches of the small prompt
            await ask(session, url, SMALL)
            await ask(session, url, big_prompt(rng, 10_000 + i))
        alone = await bystander(session, url, seconds)
        stop = asyncio.Event()
        started = time.perf_counter()
        load = asyncio.ensure_future(big_clients(session, url, rng, stop=stop))
        await asyncio.sleep(1.0)  # let the four get going
        crowded = await bystander(session, url, seconds)
        stop.set()
        sent = await load
        elapsed = time.perf_counter() - started
    print("bystanders (small requests, one client), demo context")
    print(summary("alone", alone))
    print(summary("beside four 31 KB clients", crowded))
    print(f"  31 KB prompts meanwhile: {sent} in {elapsed:.1f} s ({sent / elapsed:.1f}/s)")


async def memory(url: str, key: str, pid: int, prompts: int, idle: float) -> None:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    rng = random.Random(11)
    async with aiohttp.ClientSession(headers=headers) as session:
        await ask(session, url, SMALL)
        before = rss_mb(pid)
        started = time.perf_counter()
        await big_clients(session, url, rng, count=prompts)
        elapsed = time.perf_counter() - started
        after = rss_mb(pid)
        await asyncio.sleep(idle)
        rested = rss_mb(pid)
    print(f"memory: gateway RSS around {prompts} unique 31 KB prompts ({elapsed:.0f} s)")
    print(f"  before {before:7.1f} MB   after {after:7.1f} MB   after {idle:g} s idle "
          f"{rested:7.1f} MB")
    for message, count in ERRORS.most_common():
        print(f"  {count} big prompts failed: {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--prompts", type=int, default=1200)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-bystanders", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mock_port, port = free_port(), free_port()
        mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{port}"
        config, env, key = setup(folder, mock_url)
        mock = ["mock-upstream", "--port", str(mock_port)]
        serve = ["serve", "--config", str(config), "--port", str(port)]
        chat = f"{url}/v1/chat/completions"
        with (
            process(mock, f"{mock_url}/healthz", folder / "mock.log"),
            process(serve, f"{url}/readyz", folder / "gateway.log", env) as gateway,
        ):
            if not args.skip_bystanders:
                asyncio.run(bystanders(chat, key, args.duration))
            if not args.skip_memory:
                asyncio.run(memory(chat, key, gateway.pid, args.prompts, args.idle))


if __name__ == "__main__":
    main()
