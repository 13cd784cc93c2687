"""The cost of the limiter per request, with Redis (target: 0.3 ms p50 or less).

1. The limiter on its own: ``admit`` and ``settle`` for a request under a context's and a key's
   limits (requests and tokens per minute, tokens per day, spend per day: five counters, one
   Lua script), one request after another, in process and in Redis.
2. Through the gateway: whole answers at concurrency 1 on a context without limits and on one
   with them (counters in Redis), alternated in rounds; the difference of the medians is what
   the limits add on the request path (settlement runs after the answer).

    python bench/limiter.py [--requests 3000] [--duration 4] [--redis redis://127.0.0.1:6379/0]

Figures are medians on this 2-core machine, shared by the load generator and both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proxy import load, start_servers
from gateway.config import LimitsConfig, PricingConfig
from gateway.policy.schema import RateLimits
from gateway.quota.checks import Scope
from gateway.quota.limiter import Limiter, Ticket

LIMITED_POLICY = """\
context: bench-limited
purpose: Measure what the limits cost.
owner: bench@situate.invalid
audience: the benchmark
models: {allow: [bench]}
limits:
  rate: {requests_per_minute: 100000000, tokens_per_minute: 1000000000,
         tokens_per_day: 1000000000, spend_per_day: 1000000}
"""


RPM_POLICY = """\
context: bench-rpm
purpose: Measure what an admission alone costs (a request limit needs no settlement).
owner: bench@situate.invalid
audience: the benchmark
models: {allow: [bench]}
limits:
  rate: {requests_per_minute: 100000000}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def direct(store: str, url: str | None, requests: int) -> None:
    config = LimitsConfig(redis_url=url, key_prefix=f"bench-{secrets.token_hex(4)}", timeout=1)
    limiter = Limiter(config, PricingConfig())
    big = RateLimits(
        requests_per_minute=10**9, tokens_per_minute=10**12, tokens_per_day=10**12
    )
    scopes = [
        Scope("context", "bench", big),
        Scope("key", "key_bench", big.model_copy(update={"spend_per_day": 10**6})),
    ]
    admits, settles = [], []
    try:
        for index in range(requests):
            started = time.perf_counter()
            ticket = await limiter.admit(scopes, 40, stream=False, member=str(index))
            admitted = time.perf_counter()
            assert isinstance(ticket, Ticket)
            limiter.settle(ticket, 55, 0.0001)
            await limiter.drain()
            done = time.perf_counter()
            admits.append(admitted - started)
            settles.append(done - admitted)
    finally:
        await limiter.close()
    both = [a + s for a, s in zip(admits, settles, strict=True)]
    print(
        f"{store:<8} admit p50 {pct(admits, 0.5):.3f} ms p99 {pct(admits, 0.99):.3f} ms | "
        f"settle p50 {pct(settles, 0.5):.3f} ms | admit+settle p50 {pct(both, 0.5):.3f} ms "
        f"({requests} requests, {limiter.stats.store_failures} store failures)"
    )


async def through_gateway(url: str | None, duration: float, rounds: int) -> None:
    if url:
        os.environ["GATEWAY_REDIS_URL"] = url  # the gateway reads it (limits.redis_url)
    else:
        os.environ.pop("GATEWAY_REDIS_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"bench-limited.yaml": LIMITED_POLICY, "bench-rpm.yaml": RPM_POLICY}
        contexts, _, gateway = start_servers(Path(tmp), "aiohttp", extra)
        with ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context)  # type: ignore[call-overload]
            chat = f"{gateway.v1}/chat/completions"
            plain, admitted, limited = [], [], []
            for _ in range(rounds):
                for name, into in (
                    ("bench", plain),
                    ("bench-rpm", admitted),
                    ("bench-limited", limited),
                ):
                    key = gateway.keys[name]
                    result = await load(
                        f"{name}/whole", chat, key, "bench",
                        stream=False, concurrency=1, duration=duration,
                    )
                    assert result.errors == 0, f"{name}: {result.errors} errors"
                    into.append(result.pct(0.5))
            readyz = f"{gateway.url}/readyz"
            ready = json.loads(urllib.request.urlopen(readyz).read())  # noqa: ASYNC210
            limits = ready["checks"]["limits"]
    p, a, q = (statistics.median(v) for v in (plain, admitted, limited))
    store = "Redis" if url else "in process"
    print(
        f"gateway p50 ({store}, c=1, median of {rounds} runs): no limits {p:.3f} ms; "
        f"a request limit (admission only) {a:.3f} ms ({a - p:+.3f}); "
        f"five limits (admission + settlement) {q:.3f} ms ({q - p:+.3f}); "
        f"{limits['store_failures']} store failures, {limits['admitted']} admitted"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    default = os.environ.get("GATEWAY_REDIS_URL") or "redis://127.0.0.1:6379/0"
    parser.add_argument("--redis", default=default)
    args = parser.parse_args()
    asyncio.run(direct("process", None, args.requests))
    asyncio.run(direct("redis", args.redis, args.requests))
    asyncio.run(through_gateway(None, args.duration, args.rounds))
    asyncio.run(through_gateway(args.redis, args.duration, args.rounds))


if __name__ == "__main__":
    main()
