"""The policy engine's cost: per request, and on a stream's time to first byte.

1. In process: the bank-support example (17 rules, scope on) evaluated on a 2,000-character
   conversation, input and output stages, many times; prints p50 and p99 per request.
2. End to end: streams through the gateway (mock upstream, no token delay) for a context with
   no rules and for one with bank-support's output rules; prints the time to first byte and to
   the first content chunk, p50 and p99, and the difference.

    python bench/policy.py [--iterations 2000] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proxy import BENCH_POLICY, start_servers
from gateway.checks.registry import default_registry
from gateway.pipeline.output import OutputStage
from gateway.pipeline.stages.inputs import admit
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[1]
TURNS = [
    ("user", "Hello, I have a question about my debit card and a transfer that went missing."),
    ("assistant", "Of course. Can you tell me when you made the transfer and to whom?"),
    (
        "user",
        "Last Tuesday I sent 250 euros to my landlord by SEPA transfer from my current "
        "account, and he says it never arrived. The card was also declined twice at the "
        "supermarket this week, which never happened before.",
    ),
    (
        "assistant",
        "I'm sorry to hear that. SEPA transfers usually arrive within one business "
        "day. Please check the transfer status in the app under Payments.",
    ),
]


def conversation(size: int = 2000) -> list[dict[str, str]]:
    messages, total = [], 0
    while total < size:
        for role, text in TURNS:
            messages.append({"role": role, "content": text})
            total += len(text)
    messages.append({"role": "user", "content": "Why was my card declined at the shop?"})
    return messages


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(
    policy: CompiledPolicy, requests: list[list[dict[str, str]]], answers: list[str]
) -> list[float]:
    timings = []
    for messages, answer_text in zip(requests, answers, strict=True):
        body = {"model": "demo-small", "messages": messages}
        answer = {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": answer_text},
                }
            ]
        }
        started = time.perf_counter()
        decision = Decision(policy.revision, policy.context)
        admit(policy, body, decision)
        OutputStage(policy, decision, disclose=True).answer(answer)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def engine(iterations: int) -> None:
    policy = load_policy(
        ROOT / "policies" / "bank-support.yaml", default_registry(), ["demo-small", "demo-large"]
    )
    messages = conversation()
    chars = sum(len(m["content"]) for m in messages)
    answer = " ".join(m["content"] for m in messages if m["role"] == "assistant")[:1500]
    answers = [f"{answer} ({i})" for i in range(iterations)]
    # A chat: the history repeats, the last message and the answer are new every time.
    chat = [
        [*messages[:-1], {"role": "user", "content": f"{messages[-1]['content']} ({i})"}]
        for i in range(iterations)
    ]
    # Worst case: every message of every request is new (no history to remember).
    cold = [
        [{**m, "content": f"{m['content']} [{i}]"} for m in messages] for i in range(iterations)
    ]
    print(
        f"engine: bank-support, {len(policy.rules)} rules + scope, {chars}-character "
        f"conversation + {len(answer)}-character answer, {iterations} runs each"
    )
    for name, requests in (("chat (history repeats)", chat), ("cold (all text new)", cold)):
        timings = _timed(policy, requests, answers)
        print(
            f"  {name:<24} p50 {statistics.median(timings):.3f} ms, "
            f"p99 {pct(timings, 0.99):.3f} ms per request (input + output)"
        )


async def one_stream(session: aiohttp.ClientSession, url: str, body: str) -> tuple[float, float]:
    """Milliseconds to the first line of the stream, and to the first non-empty content."""
    started = time.perf_counter()
    first_byte = first_content = 0.0
    async with session.post(url, data=body) as response:
        async for line in response.content:
            elapsed = (time.perf_counter() - started) * 1000
            first_byte = first_byte or elapsed
            if not first_content and b'"content": "' in line and b'"content": ""' not in line:
                first_content = elapsed
    return first_byte, first_content


async def ttfb(url: str, key: str, duration: float) -> tuple[list[float], list[float]]:
    body = json.dumps(
        {
            "model": "bench",
            "stream": True,
            "messages": [{"role": "user", "content": "Tell me about my card."}],
        }
    )
    first_bytes, first_contents = [], []
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            byte, content = await one_stream(session, url, body)
            first_bytes.append(byte)
            first_contents.append(content)
    return first_bytes, first_contents


def streams(duration: float) -> None:
    bank = yaml.safe_load((ROOT / "policies" / "bank-support.yaml").read_text())
    rules = [r for r in bank["rules"] if r["stage"] in ("output", "both")]
    for rule in rules:
        rule.pop("review", None)  # the bench context has no review queues
    ruled = yaml.safe_load(BENCH_POLICY) | {"context": "bench-rules", "rules": rules}
    with tempfile.TemporaryDirectory() as tmp:
        contexts, _, gateway = start_servers(
            Path(tmp), "aiohttp", extra={"bench-rules.yaml": yaml.safe_dump(ruled)}
        )
        with contexts[0], contexts[1]:  # type: ignore[attr-defined]
            url = f"{gateway.v1}/chat/completions"
            results = {
                name: uvloop.run(ttfb(url, gateway.keys[name], duration))
                for name in ("bench", "bench-rules")
            }
    print(
        f"streams through the gateway, {duration:.0f} s each (no output rules vs "
        f"{len(rules)} output rules of bank-support):"
    )
    for name, (byte, content) in results.items():
        print(
            f"  {name:<12} first byte p50 {statistics.median(byte):.2f} ms p99 "
            f"{pct(byte, 0.99):.2f} ms; first content p50 {statistics.median(content):.2f} ms"
            f" p99 {pct(content, 0.99):.2f} ms ({len(byte)} streams)"
        )
    plain, ruled_results = results["bench"], results["bench-rules"]
    print(
        f"  added by output rules: first byte p50 "
        f"{statistics.median(ruled_results[0]) - statistics.median(plain[0]):+.2f} ms, "
        f"first content p50 "
        f"{statistics.median(ruled_results[1]) - statistics.median(plain[1]):+.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    engine(args.iterations)
    streams(args.duration)


if __name__ == "__main__":
    main()
