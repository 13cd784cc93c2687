"""The pieces of upstream reliability on their own: a plan's order and fallbacks, the tries run
by it (with the failures as the client would get them), the breaker's clock, the budget,
Retry-After, and the key scrubbed across stream frames."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.clock import now
from gateway.config import GatewayConfig, HealthConfig, RetryConfig
from gateway.errors import GatewayError, UpstreamPassthrough
from gateway.pipeline.stream_events import scrubbed
from gateway.upstream.attempts import NoHealthyBackend, run_plan
from gateway.upstream.client import UpstreamClient
from gateway.upstream.failures import UpstreamStatusError
from gateway.upstream.health import HealthBoard, State
from gateway.upstream.retry import RetryBudget, backoff, retry_after
from gateway.upstream.router import ModelRouter, Route
from gateway.upstream.sse import Event, parse_event

SECRET = "sk-backend-0123456789abcdef"


def config(**upstream: Any) -> GatewayConfig:
    backends = {name: {"base_url": f"http://{name}.test/v1"} for name in ("a", "b", "c")}
    return GatewayConfig.model_validate(
        {
            "backends": backends,
            "models": {
                "two": {
                    "backends": [{"backend": "a", "model": "m1"}, {"backend": "b", "model": "m2"}]
                },
                "heavy": {
                    "strategy": "weighted",
                    "backends": [
                        {"backend": "a", "model": "m", "weight": 9},
                        {"backend": "b", "model": "m", "weight": 1},
                    ],
                },
                "main": {"backend": "a", "model": "m", "fallback": ["spare", "secret"]},
                "spare": {"backend": "c", "model": "s"},
                "secret": {"backend": "c", "model": "x"},
            },
            "upstream": {"retry": {"backoff_base": 0, "backoff_max": 0}, **upstream},
        }
    )


def router(**upstream: Any) -> ModelRouter:
    cfg = config(**upstream)
    urls = {name: f"http://{name}.test/v1" for name in cfg.backends}
    return ModelRouter(cfg, urls, random.Random(7))


def failing(*errors: GatewayError | None) -> tuple[Callable[[Route], Awaitable[str]], list[str]]:
    """A try that fails with each error in turn (None: answers), and the backends it met."""
    met: list[str] = []
    queue = list(errors)

    async def call(route: Route) -> str:
        met.append(route.backend_name)
        error = queue.pop(0) if queue else None
        if error is not None:
            raise error
        return f"answer from {route.backend_name}"

    return call, met


def five_hundred() -> UpstreamStatusError:
    return UpstreamStatusError("down", code="upstream_error", upstream_status=500)


def run(
    plan: Any, call: Callable[[Route], Awaitable[str]]
) -> tuple[Route, str, list[dict[str, Any]]]:
    log: list[dict[str, Any]] = []
    route, answer = asyncio.run(run_plan(plan, call, log))
    return route, answer, log


def test_priority_fails_over_in_order_and_fallback_keeps_to_what_the_policy_allows() -> None:
    r = router()
    assert [s.alias for s in r.plan("main", ["main", "spare"]).stages] == ["main", "spare"]
    assert [s.alias for s in r.plan("main", ["main"]).stages] == ["main"]
    call, met = failing(five_hundred(), None)
    _, answer, log = run(r.plan("two", ["two"]), call)
    assert met == ["a", "b"] and answer == "answer from b"
    assert [(e["backend"], e["model"], e["outcome"], e["status"]) for e in log] == [
        ("a", "m1", "retried", 500),
        ("b", "m2", "ok", 200),
    ]


def test_weighted_order_follows_the_weights() -> None:
    r = router()
    firsts = [r.plan("heavy", ["heavy"]).first.backend_name for _ in range(2000)]
    assert 0.85 < firsts.count("a") / 2000 < 0.95


def test_a_fallback_alias_serves_when_every_try_of_the_alias_failed() -> None:
    call, met = failing(five_hundred(), five_hundred(), five_hundred(), None)
    route, _, log = run(router().plan("main", ["main", "spare"]), call)
    assert met == ["a", "a", "a", "c"] and route.alias == "spare"
    assert [e["alias"] for e in log] == ["main"] * 3 + ["spare"]


def test_a_4xx_is_not_retried_and_goes_back_as_it_came() -> None:
    refused = UpstreamPassthrough(400, b'{"error": {"message": "bad"}}', {})
    call, met = failing(refused)
    with pytest.raises(UpstreamPassthrough):
        run(router().plan("two", ["two"]), call)
    assert met == ["a"]


def test_a_long_retry_after_ends_the_tries() -> None:
    slow_down = UpstreamPassthrough(429, b"{}", {"retry-after": "60"})
    call, met = failing(slow_down, None)
    with pytest.raises(UpstreamPassthrough):
        run(router().plan("two", ["two"]), call)
    assert met == ["a"]


def test_the_budget_denies_a_retry_beyond_its_share() -> None:
    r = router(retry={"budget_min": 0, "budget_ratio": 0.2, "backoff_base": 0})
    log: list[dict[str, Any]] = []
    call, met = failing(five_hundred(), None)
    with pytest.raises(UpstreamStatusError):
        asyncio.run(run_plan(r.plan("two", ["two"]), call, log))
    assert met == ["a"] and log[-1]["outcome"] == "budget_exhausted"
    assert r.budget.stats.denied == 1 and r.budget.active == r.budget.retrying == 0


def test_the_budget_counts_retries_in_flight_against_active_requests() -> None:
    budget = RetryBudget(RetryConfig(budget_ratio=0.2, budget_min=3))
    budget.active = 30
    assert [budget.take() for _ in range(7)] == [True] * 6 + [False]
    budget.give_back()
    assert budget.take()


def test_every_backend_ejected_is_a_503_without_a_try() -> None:
    r = router(health={"failures": 1, "ejection_seconds": 30})
    r.health.failed("a", "x")
    r.health.failed("b", "x")
    call, met = failing()
    with pytest.raises(NoHealthyBackend) as caught:
        run(r.plan("two", ["two"]), call)
    assert met == [] and caught.value.status == 503


def test_the_breaker_ejects_probes_once_and_doubles() -> None:
    clock = [0.0]
    board = HealthBoard(
        HealthConfig(failures=2, ejection_seconds=5, max_ejection_seconds=8),
        ["x"],
        lambda: clock[0],
    )
    board.failed("x", "e")
    assert board.state("x") is State.HEALTHY
    board.failed("x", "e")
    assert board.state("x") is State.EJECTED and not board.admit("x")
    clock[0] = 5.0
    assert board.state("x") is State.HALF_OPEN and board.available("x")
    assert board.admit("x") and not board.admit("x")  # one probe at a time
    board.failed("x", "e")  # the probe failed: 10 s, capped at 8
    clock[0] = 12.9
    assert board.state("x") is State.EJECTED
    clock[0] = 13.0
    assert board.admit("x")
    board.succeeded("x")
    assert board.report("x")["ejections"] == 0 and board.state("x") is State.HEALTHY


def test_retry_after_in_each_form() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    later = format_datetime(now() + timedelta(seconds=20), usegmt=True)
    assert 18 < (retry_after({"retry-after": later}) or 0) <= 20
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_backoff_has_full_jitter_under_its_cap() -> None:
    rng, cfg = random.Random(1), RetryConfig(backoff_base=0.1, backoff_max=0.3)
    waits = [backoff(cfg, 3, rng) for _ in range(500)]
    assert max(waits) <= 0.3 and min(waits) < 0.03


async def _events(texts: list[str]) -> AsyncIterator[Event]:
    for text in texts:
        delta = {"content": text} if text else {}
        finish = None if text else "stop"
        chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        yield parse_event(b"data: " + json.dumps(chunk).encode())
    yield parse_event(b"data: [DONE]")


def _streamed(texts: list[str]) -> str:
    async def go() -> str:
        client = UpstreamClient(None, [SECRET])  # type: ignore[arg-type]  # no request is sent
        out = []
        async for event in scrubbed(_events(texts), client):
            if event.data and not event.done:
                choice = json.loads(event.data)["choices"][0]
                out.append(choice["delta"].get("content") or "")
        return "".join(out)

    return asyncio.run(go())


@pytest.mark.parametrize("cut", [1, 3, 10, len(SECRET) - 1])
def test_the_key_split_across_frames_is_scrubbed(cut: int) -> None:
    texts = [f"key {SECRET[:cut]}", f"{SECRET[cut:]} end", ""]
    assert _streamed(texts) == "key [redacted] end"


def test_text_that_only_looks_like_the_keys_start_is_released_whole() -> None:
    assert _streamed(["ask s", "k-nothing", " more s", ""]) == "ask sk-nothing more s"
    # no finish: what was held is flushed at [DONE]
    assert _streamed(["trailing sk-backend"]) == "trailing sk-backend"



def test_a_probe_cut_short_by_the_client_leaving_is_given_back() -> None:
    r = router(health={"failures": 1, "ejection_seconds": 0.01})
    r.health.failed("a", "x")
    time.sleep(0.02)  # the ejection is over: the next try is the probe
    assert r.health.state("a") is State.HALF_OPEN

    async def leaves(route: Route) -> str:
        raise asyncio.CancelledError

    log: list[dict[str, Any]] = []
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_plan(r.plan("two", ["two"]), leaves, log))
    assert log[-1]["outcome"] == "cancelled"
    assert r.health.admit("a")  # the probe is free for the next request


def test_the_docs_sample_of_several_backends_is_a_valid_config() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "backends.md").read_text()
    sample = text.split("## Several backends per alias", 1)[1].split("```yaml\n", 1)[1]
    models = yaml.safe_load(sample.split("```", 1)[0])["models"]
    names = ("vllm-a", "vllm-b", "openai")
    backends = {name: {"base_url": f"http://{name}.test/v1"} for name in names}
    cfg = GatewayConfig.model_validate({"backends": backends, "models": models})
    r = ModelRouter(cfg, {name: f"http://{name}.test/v1" for name in names})
    plan = r.plan("support-small", ["support-small", "support-large"])
    assert [[x.backend_name for x in s.routes] for s in plan.stages] == [list(names), ["openai"]]
