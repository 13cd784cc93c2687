"""A long new text is never scanned on the event loop: the light checks' scan budget sends the
evaluation to a thread (as a model that must compute does), and such evaluations take turns, so
the event loop shares the interpreter with one of them at most (issue 12's amplification)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from gateway.checks.registry import default_registry
from gateway.detectors.cache import digest
from gateway.detectors.model import LOOP_SCAN_CHARS, ModelNeeded, charge_scan, try_cached
from gateway.detectors.pool import SCANS_AT_ONCE, DetectorPool, PoolSettings
from gateway.pipeline.stages.inputs import Admission, admit
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.loader import compile_policy
from gateway.policy.schema import Topic
from gateway.policy.semantic import SemanticScope

POLICY = """\
context: light
purpose: Test the scan budget.
owner: t@situate.invalid
audience: tests
models: {allow: [test-small]}
rules:
  - id: injection
    stage: input
    why: t
    detect: {injection: {threshold: 0.8}}
    action: block
  - id: contacts
    stage: input
    why: t
    detect: {pii: [email]}
    action: redact
"""


def _policy() -> CompiledPolicy:
    return compile_policy(Path("light.yaml"), POLICY, default_registry(), ["test-small"])


def _long(tag: str) -> str:
    filler = "Here is some ordinary text about an account and a transfer. "
    return f"{tag}: write to ann@example.com. " + filler * (LOOP_SCAN_CHARS // len(filler) + 5)


def test_a_long_new_text_is_scanned_on_a_thread_and_once_cached_on_the_loop() -> None:
    policy = _policy()
    pool = DetectorPool(PoolSettings(workers=1))
    threads: list[str] = []

    def work(decision: Decision, text: str) -> Admission:
        threads.append(threading.current_thread().name)
        body = {"model": "test-small", "messages": [{"role": "user", "content": text}]}
        return admit(policy, body, decision)

    async def run(text: str) -> tuple[Admission, Decision]:
        decision = Decision(policy.revision, policy.context)
        heavy = policy.heavy_at("input")
        assert not heavy  # no model: before the budget, all of it ran on the loop
        admitted = await pool.evaluate(heavy, lambda: work(decision, text), undo=decision.mark())
        return admitted, decision

    here = threading.current_thread().name
    try:
        asyncio.run(run("a short note to bob@example.com"))
        assert threads == [here]
        threads.clear()
        text = _long("first")
        admitted, decision = asyncio.run(run(text))
        assert threads[0] == here and threads[1:] and threads[1] != here
        # the try on the loop was taken back: one outcome, one redaction, as on the thread
        assert [o.rule for o in decision.outcomes] == ["contacts"]
        assert len(decision.outcomes[0].evidence) == 1
        assert "ann@example.com" not in admitted.body["messages"][0]["content"]
        threads.clear()
        asyncio.run(run(text))  # the same text again (a chat resends its history): cached
        assert threads == [here]
    finally:
        pool.close()


def test_the_budget_counts_each_new_text_of_one_evaluation_once() -> None:
    def scans(*texts: str) -> None:
        for text in texts:
            charge_scan(digest(text), len(text))

    half, more = "a" * (LOOP_SCAN_CHARS // 2), "b" * (LOOP_SCAN_CHARS // 2 + 1)
    try_cached(lambda: scans(half, half, half, "c" * (LOOP_SCAN_CHARS // 2)))  # read by 3 checks
    with pytest.raises(ModelNeeded) as stopped:
        try_cached(lambda: scans(half, more))
    assert stopped.value.scan
    try_cached(lambda: scans(half))  # a new try, a new budget
    scans(more * 10)  # outside a try (on a thread): no budget at all


def test_long_scans_take_turns_on_the_threads() -> None:
    pool = DetectorPool(PoolSettings(workers=2))
    running = 0
    most = 0
    lock = threading.Lock()

    def long_scan() -> int:
        nonlocal running, most
        charge_scan(b"long", LOOP_SCAN_CHARS + 1)  # on the loop: stops the try; a thread: nothing
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return 1

    async def many() -> list[int]:
        return await asyncio.gather(
            *(pool.evaluate(False, long_scan, undo=lambda: None) for _ in range(5))
        )

    try:
        assert asyncio.run(many()) == [1] * 5
    finally:
        pool.close()
    assert most == SCANS_AT_ONCE == 1


def test_the_semantic_scope_sends_a_long_new_text_to_a_thread_before_its_model_runs() -> None:
    topics = [Topic(name="banking", examples=["my card was declined"])]
    scope = SemanticScope(topics, min_words=1)  # no encoder: none may be loaded on the loop
    with pytest.raises(ModelNeeded) as long_one:
        try_cached(lambda: scope.classify(_long("scope")))
    assert long_one.value.scan  # a scan: it takes its turn on the threads
    with pytest.raises(ModelNeeded) as short_one:
        try_cached(lambda: scope.classify("why was my card declined"))
    assert not short_one.value.scan  # a model to run: any thread
