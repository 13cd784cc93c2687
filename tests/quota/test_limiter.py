"""The limiter on its own: the counters in process and in the real Redis (GATEWAY_TEST_REDIS_URL),
each test under a key prefix of its own so parallel runs never share a counter."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.config import LimitsConfig, Price, PricingConfig
from gateway.errors import ServiceUnavailable
from gateway.policy.schema import RateLimits
from gateway.quota.checks import Limit, Scope, reset_text, window
from gateway.quota.limiter import Limiter, Refusal, Ticket
from tests.servers import free_port

REDIS_ENV = "GATEWAY_TEST_REDIS_URL"


def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/0)")
    return url


def config(store: str, prefix: str, **extra: object) -> LimitsConfig:
    url = redis_url() if store == "redis" else None
    settings = {"redis_url": url, "key_prefix": prefix, "timeout": 2, **extra}
    return LimitsConfig.model_validate(settings)


STORES = pytest.mark.parametrize("store", ["process", "redis"])


def run(work: Callable[..., Awaitable[None]], *args: Any) -> None:
    asyncio.run(work(*args))


def with_limiter(store: str, body: Callable[[Limiter], Awaitable[None]]) -> None:
    """``body`` against a fresh limiter (and counters of its own) in ``store``."""

    async def main() -> None:
        limiter = Limiter(config(store, f"t-{secrets.token_hex(6)}"), PricingConfig())
        try:
            await body(limiter)
        finally:
            await limiter.close()

    asyncio.run(main())


def scope(**limits: float) -> list[Scope]:
    return [Scope("key", "key_1", RateLimits.model_validate(limits))]


async def admit(
    limiter: Limiter, scopes: list[Scope], estimate: int = 0, stream: bool = False
) -> Ticket | Refusal | None:
    return await limiter.admit(scopes, estimate, stream=stream, member=secrets.token_hex(4))


@STORES
def test_requests_per_minute_lets_exactly_n_through_at_once(store: str) -> None:
    with_limiter(store, _test_requests_per_minute_lets_exactly_n_through_at_once)


async def _test_requests_per_minute_lets_exactly_n_through_at_once(limiter: Limiter) -> None:
    limits = scope(requests_per_minute=7)
    results = await asyncio.gather(*(admit(limiter, limits) for _ in range(20)))
    assert sum(isinstance(r, Ticket) for r in results) == 7
    refused = [r for r in results if isinstance(r, Refusal)]
    assert len(refused) == 13
    error = refused[0].error
    assert error.status == 429 and error.code == "rate_limit_exceeded" and error.retryable
    headers = error.headers()
    assert headers["x-ratelimit-limit-requests"] == "7"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert "x-should-retry" not in headers


def test_two_replicas_share_one_redis_exactly() -> None:
    run(_test_two_replicas_share_one_redis_exactly)


async def _test_two_replicas_share_one_redis_exactly() -> None:
    prefix = f"t-{secrets.token_hex(6)}"
    # fail closed, with time to spare on a loaded machine: no admission may be counted locally
    one = Limiter(config("redis", prefix, on_unavailable="fail_closed", timeout=5), PricingConfig())
    two = Limiter(config("redis", prefix, on_unavailable="fail_closed", timeout=5), PricingConfig())
    try:
        limits = scope(requests_per_minute=25)
        results = await asyncio.gather(
            *(admit(one if i % 2 else two, limits) for i in range(80))
        )
        assert sum(isinstance(r, Ticket) for r in results) == 25
    finally:
        await one.close()
        await two.close()


@STORES
def test_a_refusal_counts_against_no_limit(store: str) -> None:
    with_limiter(store, _test_a_refusal_counts_against_no_limit)


async def _test_a_refusal_counts_against_no_limit(limiter: Limiter) -> None:
    both = [
        Scope("context", "ctx", RateLimits(requests_per_minute=100)),
        Scope("key", "key_1", RateLimits(requests_per_minute=2)),
    ]
    for _ in range(5):
        await admit(limiter, both)
    # the context's counter saw only the two requests the key's limit let through
    only_context = [Scope("context", "ctx", RateLimits(requests_per_minute=3))]
    assert isinstance(await admit(limiter, only_context), Ticket)
    assert isinstance(await admit(limiter, only_context), Refusal)


@STORES
def test_tokens_are_settled_from_usage(store: str) -> None:
    with_limiter(store, _test_tokens_are_settled_from_usage)


async def _test_tokens_are_settled_from_usage(limiter: Limiter) -> None:
    limits = scope(tokens_per_minute=100)
    ticket = await admit(limiter, limits, estimate=60)
    assert isinstance(ticket, Ticket)
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "40"
    assert isinstance(await admit(limiter, limits, estimate=60), Refusal)  # 60 + 60 > 100
    limiter.settle(ticket, 10, None)  # the backend said 10 tokens
    await limiter.drain()
    second = await admit(limiter, limits, estimate=60)
    assert isinstance(second, Ticket)
    assert second.headers["x-ratelimit-remaining-tokens"] == "30"  # 100 - 10 - 60


@STORES
def test_a_spent_budget_is_not_retryable(store: str) -> None:
    with_limiter(store, _test_a_spent_budget_is_not_retryable)


async def _test_a_spent_budget_is_not_retryable(limiter: Limiter) -> None:
    limits = scope(tokens_per_day=50)
    ticket = await admit(limiter, limits, estimate=20)
    assert isinstance(ticket, Ticket)
    limiter.settle(ticket, 55, None)
    await limiter.drain()
    refused = await admit(limiter, limits, estimate=1)
    assert isinstance(refused, Refusal)
    assert refused.error.code == "budget_exceeded"
    assert "tokens budget per day of this API key is spent" in refused.error.message
    headers = refused.error.headers()
    assert headers["x-should-retry"] == "false"
    _, ends = window(Limit.TOKENS_PER_DAY, time.time())
    assert abs(int(headers["retry-after"]) - (ends - time.time())) < 5


@STORES
def test_spend_is_charged_in_the_currency_and_refused_once_spent(store: str) -> None:
    with_limiter(store, _test_spend_is_charged_in_the_currency_and_refused_once_spent)


async def _test_spend_is_charged_in_the_currency_and_refused_once_spent(limiter: Limiter) -> None:
    limits = scope(spend_per_day=0.01, spend_per_month=1)
    ticket = await admit(limiter, limits)
    assert isinstance(ticket, Ticket)
    assert isinstance(await admit(limiter, limits), Ticket)  # spend is known only afterwards
    limiter.settle(ticket, 100, 0.0125)
    await limiter.drain()
    refused = await admit(limiter, limits)
    assert isinstance(refused, Refusal)
    assert refused.check.limit == Limit.SPEND_PER_DAY and refused.error.code == "budget_exceeded"


@STORES
def test_a_stream_holds_a_slot_until_released(store: str) -> None:
    with_limiter(store, _test_a_stream_holds_a_slot_until_released)


async def _test_a_stream_holds_a_slot_until_released(limiter: Limiter) -> None:
    limits = scope(concurrent_streams=2)
    first = await admit(limiter, limits, stream=True)
    second = await admit(limiter, limits, stream=True)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    refused = await admit(limiter, limits, stream=True)
    assert isinstance(refused, Refusal) and refused.error.headers()["retry-after"] == "1"
    assert await admit(limiter, limits) is None  # a whole answer: no limit of these applies
    limiter.settle(first, 0, None)
    await limiter.drain()
    assert isinstance(await admit(limiter, limits, stream=True), Ticket)


def test_the_price_table() -> None:
    run(_test_the_price_table)


async def _test_the_price_table() -> None:
    price = Price(input_per_million=2, output_per_million=8)
    pricing = PricingConfig(currency="EUR", models={"m": price})
    limiter = Limiter(LimitsConfig(), pricing)
    assert limiter.price("m", 1000, 500) == pytest.approx((0.006, "EUR"))
    assert limiter.price("other", 1000, 500) is None


@pytest.mark.parametrize("mode", ["fail_closed", "local"])
def test_redis_unreachable(mode: str) -> None:
    run(_test_redis_unreachable, mode)


async def _test_redis_unreachable(mode: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limits = LimitsConfig(redis_url=dead, on_unavailable=mode, key_prefix="t", timeout=0.2)
    limiter = Limiter(limits, PricingConfig())
    try:
        if mode == "fail_closed":
            with pytest.raises(ServiceUnavailable) as raised:
                await admit(limiter, scope(requests_per_minute=1))
            assert raised.value.code == "limits_unavailable"
            assert "Connection" in (raised.value.detail or "")
            assert limiter.status()["ok"] is False
        else:
            ticket = await admit(limiter, scope(requests_per_minute=1))
            assert isinstance(ticket, Ticket) and ticket.fallback
            assert isinstance(await admit(limiter, scope(requests_per_minute=1)), Refusal)
            assert limiter.status()["ok"] is True
            assert limiter.stats.counted_locally == 2
        assert limiter.stats.store_failures == 1  # tried again a second later, not every time
    finally:
        await limiter.close()


def test_reset_text_is_openais() -> None:
    written = [reset_text(s) for s in (0.02, 1, 59.2, 360, 3723)]
    assert written == ["20ms", "1s", "1m0s", "6m0s", "1h2m3s"]


def test_counters_expire_with_their_window() -> None:
    run(_test_counters_expire_with_their_window)


async def _test_counters_expire_with_their_window() -> None:
    prefix = f"t-{secrets.token_hex(6)}"
    limiter = Limiter(config("redis", prefix), PricingConfig())
    try:
        await admit(limiter, scope(requests_per_minute=5))
        client = Redis.from_url(redis_url())
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        assert len(keys) == 1
        ttl = await client.pttl(keys[0])
        assert 0 < ttl <= 180_000
        await client.aclose()
    finally:
        await limiter.close()


@STORES
def test_a_request_that_can_never_fit_is_not_retryable(store: str) -> None:
    with_limiter(store, _test_a_request_that_can_never_fit_is_not_retryable)


async def _test_a_request_that_can_never_fit_is_not_retryable(limiter: Limiter) -> None:
    too_big = await admit(limiter, scope(tokens_per_day=100), estimate=150)
    assert isinstance(too_big, Refusal) and too_big.error.code == "budget_exceeded"
    assert "has 100 tokens left, and this request may use about 150" in too_big.error.message
    refused = await admit(limiter, scope(tokens_per_minute=100), estimate=101)
    assert isinstance(refused, Refusal)
    assert refused.error.code == "rate_limit_exceeded" and not refused.error.retryable
    assert "too large" in refused.error.message
    assert isinstance(await admit(limiter, scope(tokens_per_minute=100), estimate=100), Ticket)
