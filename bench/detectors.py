"""What the learned detectors cost: added latency per request, and throughput through a gateway.

1. In process, on one core (this process pinned to CPU 0, one BLAS thread): bank-support's
   policy evaluated on a 500-character customer message (input stage) and a 500-character
   answer (output stage), every text new (no cache helps), as shipped (semantic scope and any
   classifier rules) and with heuristics only (lexical scope, no classifier rules); prints p50
   and p99 per request and what the learned detectors add.
2. End to end: requests per second at concurrency 32 through `gateway serve` (mock upstream,
   loopback, non-streaming, a new 500-character message every request) for the same two
   policies; prints the drop. Targets (issue 10): p50 <= 5 ms and p99 <= 20 ms added, a
   throughput drop <= 25%.

    python bench/detectors.py [--iterations 300] [--duration 10] [--concurrency 32]
                              [--add-learned] [--skip-gateway]

--add-learned puts the shipped injection and human_likeness models into bank-support as
classifier rules (when it names none itself), to measure them before a policy ships them.

The gateway is not pinned (the load generator shares this machine with it and the mock
upstream); quote medians of runs.
"""

from __future__ import annotations

import os

# One core for the in-process figures: set before numpy (and any BLAS) is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import asyncio
import copy
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.policy import pct
from bench.proxy import Result, start_servers
from gateway.checks.registry import default_registry
from gateway.errors import GatewayError
from gateway.pipeline.output import OutputStage
from gateway.pipeline.stages.inputs import admit
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.loader import compile_policy

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = (
    "Hello, last Tuesday I made a SEPA transfer of 250 euros from my current account to my "
    "landlord and he says it never arrived. The money has left my account, I can see it in "
    "the app under payments, but it shows as pending. My debit card was also declined twice "
    "at the supermarket this week, which never happened before, even though my balance is "
    "fine. Could you tell me what is going on with the transfer, whether my card is blocked, "
    "and what I should do? Reference"
)
ANSWER = (
    "I'm sorry about the trouble. SEPA transfers usually arrive within one business day; a "
    "transfer that still shows as pending after that is often held for a routine check. You "
    "can see its status in the app under Payments, and if it has not arrived by tomorrow "
    "please contact us so we can trace it with the receiving bank. Your card may have been "
    "declined by a temporary security block after an unusual payment; you can check this in "
    "the app under Cards and unblock it there. Case"
)


def unique(text: str, index: int, size: int = 500) -> str:
    """``text`` made new by a number, cut or padded to ``size`` characters."""
    tail = f" {index:08d}."
    return (text[: size - len(tail)] + tail).ljust(size)


def heuristics_only(policy: dict[str, Any]) -> dict[str, Any]:
    """The same policy without its learned parts: lexical scope, no classifier rules."""
    plain = copy.deepcopy(policy)
    scope = plain.get("scope") or {}
    if scope.get("topics"):
        for key in ("threshold", "margin"):
            scope.pop(key, None)
        scope["classifier"] = "lexical"
    plain["rules"] = [r for r in plain.get("rules", []) if "classifier" not in r["detect"]]
    return plain


def compiled(policy: dict[str, Any]) -> CompiledPolicy:
    """Compile a variant as if it were a file beside bank-support (its guidelines resolve)."""
    path = ROOT / "policies" / f"{policy['context']}.yaml"
    text = yaml.safe_dump(policy, sort_keys=False)
    return compile_policy(path, text, default_registry(), policy["models"]["allow"])


#: the shipped models as a policy would name them, for --add-learned
LEARNED_RULES = [
    {
        "id": "injection-model",
        "stage": "input",
        "why": "The shipped injection model.",
        "detect": {"classifier": {"model": "injection"}},
        "action": "block",
    },
    {
        "id": "human-likeness-model",
        "stage": "output",
        "why": "The shipped human-likeness model.",
        "detect": {"classifier": {"model": "human_likeness", "evidence": {"anthropomorphism": {}}}},
        "action": "flag",
    },
]


def bank(add_learned: bool = False) -> dict[str, Any]:
    """bank-support as shipped; with ``add_learned``, also the shipped models' classifier rules
    (when it has none of its own), to measure them before a policy names them."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "policies" / "bank-support.yaml").read_text())
    if add_learned and not any("classifier" in r["detect"] for r in loaded["rules"]):
        loaded["rules"] = [*LEARNED_RULES, *loaded["rules"]]
    return loaded


def pin_one_core() -> str:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"
    return f"pinned to CPU {min(os.sched_getaffinity(0))}"


def timed(policy: CompiledPolicy, iterations: int, offset: int) -> tuple[list[float], int]:
    """Milliseconds per request (input and output stage), a new message and answer each time,
    and how many requests a check failed (over its time budget)."""
    timings, failures = [], 0
    for i in range(offset, offset + iterations):
        body = {
            "model": "demo-small",
            "messages": [{"role": "user", "content": unique(MESSAGE, i)}],
        }
        answer = {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": unique(ANSWER, i)},
                }
            ]
        }
        started = time.perf_counter()
        decision = Decision(policy.revision, policy.context)
        try:
            admit(policy, body, decision)
            OutputStage(policy, decision, disclose=True).answer(answer)
        except GatewayError:  # a model over its budget: the rule's on_error decided
            failures += 1
        timings.append((time.perf_counter() - started) * 1000)
    return timings, failures


def engine(iterations: int, add_learned: bool) -> None:
    where = pin_one_core()
    shipped = compiled(bank(add_learned))
    plain = compiled(heuristics_only(bank()) | {"context": "bank-heuristics"})
    learned = [r.id for r in shipped.rules if r.spec.detector == "classifier"]
    print(
        f"engine ({where}, OMP/OPENBLAS threads 1, load average"
        f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): bank-support on a"
        f" 500-character message + 500-character answer, every text new, {iterations} runs each"
    )
    print(
        f"  as shipped: scope {shipped.policy.scope.classifier}, classifier rules:"
        f" {', '.join(learned) or 'none'}; heuristics only: scope lexical, no classifier rules"
    )
    results = {}
    for name, policy in (("heuristics only", plain), ("as shipped", shipped)):
        timed(policy, 20, 10_000_000)  # warm up: models loaded, pools started
        results[name], failures = timed(policy, iterations, 0)
        print(
            f"  {name:<16} p50 {statistics.median(results[name]):.3f} ms,"
            f" p99 {pct(results[name], 0.99):.3f} ms per request (input + output),"
            f" {failures} failed a check's time budget"
        )
    base, full = results["heuristics only"], results["as shipped"]
    print(
        "  added by the learned detectors: p50"
        f" {statistics.median(full) - statistics.median(base):+.3f} ms,"
        f" p99 {pct(full, 0.99) - pct(base, 0.99):+.3f} ms (targets: p50 <= 5, p99 <= 20)"
    )


def served(policy: dict[str, Any], context: str) -> str:
    """A policy file for the bench gateway: its one model alias, no review queues."""
    policy = copy.deepcopy(policy) | {"context": context, "models": {"allow": ["bench"]}}
    policy.pop("review", None)
    for rule in policy["rules"]:
        rule.pop("review", None)
    return yaml.safe_dump(policy, sort_keys=False)


async def load(
    url: str, key: str, concurrency: int, duration: float, offset: int
) -> tuple[Result, int, Counter[int]]:
    """Answered requests per second with a new message each request; also how many the
    policy refused, and the statuses of the failed ones (a 503: a check over its budget)."""
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    latencies: list[float] = []
    failed: Counter[int] = Counter()
    refused = 0
    counter = iter(range(offset, offset + 10_000_000))

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal refused
        body = {
            "model": "bench",
            "messages": [{"role": "user", "content": unique(MESSAGE, next(counter))}],
        }
        started = time.perf_counter()
        async with session.post(url, data=json.dumps(body)) as response:
            answer = await response.read()
        if response.status != 200:
            failed[response.status] += 1
            return
        latencies.append(time.perf_counter() - started)
        refused += json.loads(answer)["choices"][0]["finish_reason"] == "content_filter"

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        for _ in range(20):  # warm up connections, models and caches
            await one(session)
        latencies.clear()
        failed.clear()
        refused = 0
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one(session)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    errors = sum(failed.values())
    return (
        Result("gateway", concurrency, len(latencies), seconds, latencies, errors),
        refused,
        failed,
    )


def _ms(result: Result, q: float) -> str:
    return f"{result.pct(q):.1f} ms" if result.latencies else "n/a"


def throughput(duration: float, concurrency: int, add_learned: bool) -> None:
    extra = {
        "bank-shipped.yaml": served(bank(add_learned), "bank-shipped"),
        "bank-heuristics.yaml": served(heuristics_only(bank()), "bank-heuristics"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        contexts, _, gateway = start_servers(Path(tmp), "aiohttp", extra=extra)
        with contexts[0], contexts[1]:  # type: ignore[attr-defined]
            url = f"{gateway.v1}/chat/completions"
            runs = {
                name: uvloop.run(load(url, gateway.keys[name], concurrency, duration, i * 10**7))
                for i, name in enumerate(("bank-heuristics", "bank-shipped"))
            }
    print(f"through the gateway, concurrency {concurrency}, {duration:.0f} s each, non-streaming:")
    for name, (result, refused, failed) in runs.items():
        statuses = ", ".join(f"{n} HTTP {status}" for status, n in sorted(failed.items()))
        print(
            f"  {name:<16} {result.rps:7.1f} answered req/s, p50 {_ms(result, 0.5)},"
            f" p99 {_ms(result, 0.99)}, {result.requests} answered,"
            f" {refused} refused by the policy, {result.errors} failed ({statuses or 'none'})"
        )
    base, full = runs["bank-heuristics"][0], runs["bank-shipped"][0]
    if not base.requests:
        return
    print(
        f"  throughput with the learned detectors: {full.rps / base.rps:.2f} of heuristics only"
        f" (a drop of {100 * (1 - full.rps / base.rps):.1f}%; target <= 25%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-gateway", action="store_true", help="the in-process part only")
    parser.add_argument(
        "--add-learned",
        action="store_true",
        help="add the shipped injection and human_likeness classifier rules to bank-support"
        " when it names no model itself",
    )
    args = parser.parse_args()
    if not args.skip_gateway:  # first, before this process is pinned to one core
        throughput(args.duration, args.concurrency, args.add_learned)
    engine(args.iterations, args.add_learned)


if __name__ == "__main__":
    main()
