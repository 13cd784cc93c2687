"""The limiter: admits a request against its context's and its key's limits, settles what the
exchange really used, and says how full the tightest window is.

Counters live in Redis when ``limits.redis_url`` is set (shared exactly by every replica), else
in this process. While Redis cannot be reached, ``limits.on_unavailable`` applies: refuse the
limited requests (503), or count in this process; either way it is counted here (``/readyz``)
and said on the exchange. After a failure Redis is tried again a second later, not on every
request, so an outage costs each request no timeout.

An admission whose answer came too late (``limits.timeout``) or whose call was cancelled may
still have run in Redis: its stream's slot there is removed at once, off the request path (its
requests and tokens stay counted there too: over-counting, never under-counting). Stream slots
are short and renewed while their streams are open (``gateway.quota.slots``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.config import LimitsConfig, PricingConfig
from gateway.errors import RateLimited, ServiceUnavailable
from gateway.quota.checks import (
    MICROS,
    SPEND_LIMITS,
    TOKEN_LIMITS,
    Check,
    Kind,
    Limit,
    Scope,
    checks_for,
    reset_text,
)
from gateway.quota.counters import Adjustment, Counted, Counters, LocalCounters, RedisCounters
from gateway.quota.slots import SlotKeeper, slot_keys

log = logging.getLogger("gateway.quota")

RETRY_REDIS_SECONDS = 1.0
#: at shutdown, how long the settlements under way may take before they are given up
DRAIN_SECONDS = 2.0


@dataclass(slots=True)
class QuotaStats:
    admitted: int = 0
    refused: int = 0
    #: Redis calls that failed or timed out
    store_failures: int = 0
    #: requests counted in this process because Redis was unreachable (mode ``local``)
    counted_locally: int = 0
    #: requests refused because Redis was unreachable (mode ``fail_closed``)
    refused_unavailable: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class Ticket:
    """An admitted request: what it reserved, where, to settle as the exchange ends."""

    counters: Counters
    checks: list[Check]
    estimate: int
    member: str
    headers: dict[str, str]
    #: why the request was counted in this process, when Redis could not be reached
    fallback: str | None = None
    settled: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class Refusal:
    check: Check
    used: int
    error: RateLimited


class Limiter:
    def __init__(self, config: LimitsConfig, pricing: PricingConfig) -> None:
        self.config = config
        self.pricing = pricing
        self.stats = QuotaStats()
        self.local = LocalCounters()
        self.redis: Redis | None = None
        self._shared: RedisCounters | None = None
        if config.redis_url:
            self.redis = Redis.from_url(
                config.redis_url,
                socket_timeout=config.timeout,
                socket_connect_timeout=config.timeout,
            )
            self._shared = RedisCounters(self.redis)
        self._down_until = 0.0
        self._reachable = True
        self._pending: set[asyncio.Task[None]] = set()
        self.slots = SlotKeeper(self.local, self.redis, config.timeout, self._failed)

    @property
    def store(self) -> str:
        return "redis" if self._shared is not None else "process"

    async def admit(
        self, scopes: list[Scope], estimate: int, *, stream: bool, member: str
    ) -> Ticket | Refusal | None:
        """Count a request against every limit of its scopes; None when none is set."""
        now = time.time()
        checks = checks_for(scopes, self.config.key_prefix, estimate, stream, now)
        if not checks:
            return None
        counters: Counters = self.local
        fallback: str | None = None
        counted: Counted | None = None
        if self._shared is not None:
            counted, fallback = await self._admit_shared(checks, member)
        if counted is None:
            counted = self.local.admit_now(checks, member, now)
        else:
            counters = self._shared or self.local
        if counted.refused is not None:
            self.stats.refused += 1
            check = checks[counted.refused]
            return Refusal(check, counted.used[-1], _refusal(check, counted.used, checks, now))
        self.stats.admitted += 1
        headers = _headers(checks, counted.used, now)
        self.slots.hold(member, slot_keys(checks), shared=counters is not self.local)
        return Ticket(counters, checks, estimate, member, headers, fallback)

    async def _admit_shared(
        self, checks: list[Check], member: str
    ) -> tuple[Counted | None, str | None]:
        """Redis's answer, or (None, why) when it cannot be had and ``local`` mode applies."""
        assert self._shared is not None
        why = "Redis was unreachable a moment ago"
        if time.monotonic() >= self._down_until:
            try:
                counted = await self._bounded(self._shared.admit(checks, member))
                self._reachable = True
                return counted, None
            except (RedisError, OSError, TimeoutError) as exc:
                why = self._failed(exc)
                self._forget(checks, member)  # the script may have run all the same
            except asyncio.CancelledError:
                self._forget(checks, member)
                raise
        if self.config.on_unavailable == "fail_closed":
            self.stats.refused_unavailable += 1
            error = ServiceUnavailable(
                "The gateway cannot check its rate limits just now; try again shortly.",
                code="limits_unavailable",
                headers={"retry-after": "1"},
            )
            error.detail = why
            raise error
        self.stats.counted_locally += 1
        return None, f"counted in this process: {why}"

    async def _bounded(self, work: Awaitable[Any]) -> Any:
        async with asyncio.timeout(self.config.timeout):  # no task of its own, as wait_for
            return await work

    def _forget(self, checks: list[Check], member: str) -> None:
        """An admission whose answer was lost: its slot in Redis, if the script took one, is
        removed (best effort; else it expires within ``SLOT_SECONDS``)."""
        keys = slot_keys(checks)
        if keys:
            self._background(self.slots.forget(keys, member))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _failed(self, exc: BaseException) -> str:
        why = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        self.stats.store_failures += 1
        self.stats.last_error = why
        self._down_until = time.monotonic() + RETRY_REDIS_SECONDS
        self._reachable = False
        log.warning("the rate-limit store failed: %s", why)
        return why

    def price(self, alias: str, prompt: int, completion: int) -> tuple[float, str] | None:
        table = self.pricing.models.get(alias)
        if table is None:
            return None
        cost = (prompt * table.input_per_million + completion * table.output_per_million) / 1e6
        return cost, self.pricing.currency

    def settle(self, ticket: Ticket, tokens: int, cost: float | None) -> None:
        """Charge what the exchange used (its tokens, its cost) and free its stream's slot,
        off the request path; once per ticket."""
        if ticket.settled:
            return
        ticket.settled = True
        self.slots.let_go(ticket.member)
        now = time.time()
        adjustments: list[Adjustment] = []
        slots: list[str] = []
        for check in ticket.checks:
            if check.kind == Kind.SLOTS:
                slots.append(check.key)
            elif check.limit in TOKEN_LIMITS and tokens != ticket.estimate:
                delta = tokens - ticket.estimate
                adjustments.append(Adjustment(check.key, delta, check.ttl_ms(now)))
            elif check.limit in SPEND_LIMITS and cost:
                delta = round(cost * MICROS)
                adjustments.append(Adjustment(check.key, delta, check.ttl_ms(now)))
        if isinstance(ticket.counters, LocalCounters):  # nothing to wait for: at once
            ticket.counters.finish_now(adjustments, slots, ticket.member)
        elif adjustments or slots:
            self._background(self._settle(ticket.counters, adjustments, slots, ticket.member))

    async def _settle(
        self, counters: Counters, adjustments: list[Adjustment], slots: list[str], member: str
    ) -> None:
        try:
            await self._bounded(counters.finish(adjustments, slots, member))
        except (RedisError, OSError, TimeoutError) as exc:
            # what was reserved stays counted (a slot expires on its own): over-counting, never
            # under-counting, while the store is away
            self._failed(exc)

    async def drain(self, within: float | None = None) -> int:
        """Wait for the settlements under way (at shutdown), at most ``within`` seconds; how
        many were given up (cancelled) for want of time."""
        pending = set(self._pending)
        if not pending:
            return 0
        _, late = await asyncio.wait(pending, timeout=within)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("%d rate-limit settlements were given up at shutdown", len(late))
        return len(late)

    async def close(self) -> None:
        """At shutdown, after the last exchange ended: its settlements are sent first (each is
        bounded by ``limits.timeout``; all of them by ``DRAIN_SECONDS``), then Redis closed."""
        await self.drain(max(DRAIN_SECONDS, 2 * self.config.timeout))
        await self.slots.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def health(self) -> dict[str, Any]:
        """For ``/readyz``: Redis asked afresh (so readiness comes back with it, traffic or
        not); not ready only while fail_closed refuses for want of it."""
        if self.redis is not None:
            try:
                await self._bounded(self.redis.ping())
                self._reachable, self._down_until = True, 0.0
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
        return self.status()

    def status(self) -> dict[str, Any]:
        down = self._shared is not None and not self._reachable
        return {
            "ok": not (down and self.config.on_unavailable == "fail_closed"),
            "store": self.store,
            "reachable": None if self._shared is None else not down,
            "on_unavailable": self.config.on_unavailable,
            "admitted": self.stats.admitted,
            "refused": self.stats.refused,
            "store_failures": self.stats.store_failures,
            "counted_locally": self.stats.counted_locally,
            "refused_unavailable": self.stats.refused_unavailable,
            "last_error": self.stats.last_error,
        }


def _refusal(check: Check, used: list[int], checks: list[Check], now: float) -> RateLimited:
    wait = 1 if check.kind == Kind.SLOTS else max(1, math.ceil(check.expires_at - now))
    headers = _headers(checks[: len(used)], used, now, refused=True)
    headers["retry-after"] = str(wait)
    who = "this deployment context" if check.scope == "context" else "this API key"
    if check.budget:
        what = "spend" if check.limit in SPEND_LIMITS else "tokens"
        period = "day" if check.limit != Limit.SPEND_PER_MONTH else "month"
        left = check.maximum - used[-1]
        state = (
            f"has {left} tokens left, and this request may use about {check.amount}"
            if check.kind == Kind.COUNT and left > 0
            else "is spent"
        )
        return RateLimited(
            f"The {what} budget per {period} of {who} {state}; it renews in {reset_text(wait)}.",
            code="budget_exceeded",
            headers=headers,
            retryable=False,
        )
    if check.kind == Kind.COUNT and check.amount > check.maximum:  # it can never fit
        return RateLimited(
            f"This request is too large for the tokens per minute of {who}: about "
            f"{check.amount} tokens (its text and max_tokens) of {check.maximum} a minute.",
            code="rate_limit_exceeded",
            headers=headers,
            retryable=False,
        )
    message = {
        Limit.REQUESTS_PER_MINUTE: f"{check.maximum} requests per minute",
        Limit.TOKENS_PER_MINUTE: f"{check.maximum} tokens per minute",
        Limit.CONCURRENT_STREAMS: f"{check.maximum} concurrent streams",
    }[check.limit]
    return RateLimited(
        f"Rate limit of {who} reached ({message}); try again in {reset_text(wait)}.",
        code="rate_limit_exceeded",
        headers=headers,
    )


def _headers(
    checks: list[Check], used: list[int], now: float, *, refused: bool = False
) -> dict[str, str]:
    """``x-ratelimit-*`` of the tightest request and token limits, as OpenAI sends them."""
    headers: dict[str, str] = {}
    for kind, limits in (
        ("requests", (Limit.REQUESTS_PER_MINUTE,)),
        ("tokens", (Limit.TOKENS_PER_MINUTE, Limit.TOKENS_PER_DAY)),
    ):
        left = [
            (max(0, c.maximum - u - (0 if refused else c.amount)), c)
            for c, u in zip(checks, used, strict=False)
            if c.limit in limits
        ]
        if not left:
            continue
        remaining, check = min(left, key=lambda pair: pair[0])
        headers[f"x-ratelimit-limit-{kind}"] = str(check.maximum)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = reset_text(check.expires_at - now)
    return headers
