"""What one admission asks of the counters: a ``Check`` per limit that is set, on each scope
(the context's limits and the key's own), in fixed UTC windows.

Windows are fixed, not sliding: the minute, the day and the calendar month, in UTC, from the
gateway's clock. A fixed window is exact across replicas (one counter per window, incremented
atomically), which is the promise; its price is that a client may spend up to twice a
per-minute limit around a minute's boundary. Spend is counted in millionths of the currency,
so every counter is an integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from gateway.policy.schema import RateLimits

MICROS = 1_000_000
#: how long a stream's slot is held unless renewed: its replica renews it while the stream is
#: open (``gateway.quota.slots``), so this is how long a slot outlives a replica that died, or a
#: release that failed
SLOT_SECONDS = 120
#: a counter outlives its window by this much, so a settlement after the window still lands
SLACK_SECONDS = 120


class Kind(StrEnum):
    COUNT = "count"  # refused when used + amount > limit; amount added on admission
    BUDGET = "budget"  # refused when used >= limit; charged on settlement only
    SLOTS = "slots"  # a set of open streams, each with its own expiry


class Limit(StrEnum):
    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"
    TOKENS_PER_DAY = "tokens_per_day"
    CONCURRENT_STREAMS = "concurrent_streams"
    SPEND_PER_DAY = "spend_per_day"
    SPEND_PER_MONTH = "spend_per_month"


#: limits that are budgets: once spent, no retry helps until the window ends
BUDGETS = frozenset({Limit.TOKENS_PER_DAY, Limit.SPEND_PER_DAY, Limit.SPEND_PER_MONTH})
TOKEN_LIMITS = frozenset({Limit.TOKENS_PER_MINUTE, Limit.TOKENS_PER_DAY})
SPEND_LIMITS = frozenset({Limit.SPEND_PER_DAY, Limit.SPEND_PER_MONTH})


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose limits: ``context`` (the policy's) or ``key`` (the key's own), and its id."""

    kind: str
    id: str
    limits: RateLimits


@dataclass(frozen=True, slots=True)
class Check:
    scope: str  # "context" or "key"
    limit: Limit
    kind: Kind
    key: str  # the counter's name, its window included
    maximum: int  # in requests, tokens, streams or micros
    amount: int  # added on admission (0 for budgets)
    expires_at: float  # epoch seconds: the window's end (a slot's expiry for SLOTS)

    @property
    def budget(self) -> bool:
        return self.limit in BUDGETS

    def ttl_ms(self, now: float) -> int:
        """How long the counter must live from ``now`` (never below one second)."""
        slack = 0 if self.kind == Kind.SLOTS else SLACK_SECONDS
        return max(1000, int((self.expires_at + slack - now) * 1000))


def window(limit: Limit, now: float) -> tuple[str, float]:
    """The window ``now`` falls in: its name and its end (epoch seconds)."""
    if limit in (Limit.REQUESTS_PER_MINUTE, Limit.TOKENS_PER_MINUTE):
        start = int(now // 60) * 60
        return f"m{start}", float(start + 60)
    if limit in (Limit.TOKENS_PER_DAY, Limit.SPEND_PER_DAY):
        start = int(now // 86400) * 86400
        return f"d{start}", float(start + 86400)
    moment = datetime.fromtimestamp(now, UTC)
    following = (
        datetime(moment.year + 1, 1, 1, tzinfo=UTC)
        if moment.month == 12
        else datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
    )
    return f"M{moment.year}{moment.month:02d}", following.timestamp()


def checks_for(
    scopes: list[Scope], prefix: str, estimate: int, stream: bool, now: float
) -> list[Check]:
    """Every check one admission makes, in a fixed order (the context's, then the key's)."""
    made: list[Check] = []
    for scope in scopes:
        limits = scope.limits
        wanted: list[tuple[Limit, float | None, Kind, int]] = [
            (Limit.REQUESTS_PER_MINUTE, limits.requests_per_minute, Kind.COUNT, 1),
            (Limit.TOKENS_PER_MINUTE, limits.tokens_per_minute, Kind.COUNT, estimate),
            (Limit.TOKENS_PER_DAY, limits.tokens_per_day, Kind.COUNT, estimate),
            (Limit.SPEND_PER_DAY, _micros(limits.spend_per_day), Kind.BUDGET, 0),
            (Limit.SPEND_PER_MONTH, _micros(limits.spend_per_month), Kind.BUDGET, 0),
        ]
        if stream:
            wanted.append((Limit.CONCURRENT_STREAMS, limits.concurrent_streams, Kind.SLOTS, 1))
        base = f"{prefix}:{scope.kind}:{scope.id}"
        for limit, maximum, kind, amount in wanted:
            if maximum is None:
                continue
            if kind == Kind.SLOTS:
                name, ends = "streams", now + SLOT_SECONDS
            else:
                name, ends = window(limit, now)
                name = f"{limit}:{name}"
            made.append(
                Check(scope.kind, limit, kind, f"{base}:{name}", int(maximum), amount, ends)
            )
    return made


def _micros(value: float | None) -> int | None:
    return None if value is None else round(value * MICROS)


def reset_text(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms``, ``1s``,
    ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    whole = int(seconds + 0.999)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
