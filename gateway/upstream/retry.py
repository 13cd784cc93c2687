"""Retries: how long to wait before the next try, and the budget that keeps them few.

The budget is Envoy's: retries in flight may be at most ``budget_ratio`` of the requests in
flight (every request that is talking to a backend), with ``budget_min`` always allowed, so a
failing backend meets the traffic it would have met without retries plus a bounded share,
never a multiple of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from gateway.clock import now
from gateway.config import RetryConfig


@dataclass(slots=True)
class BudgetStats:
    retries: int = 0  # retries made
    denied: int = 0  # retries the budget refused


class RetryBudget:
    def __init__(self, config: RetryConfig) -> None:
        self._config = config
        self.active = 0  # requests in flight to a backend
        self.retrying = 0  # of which, on a retry right now
        self.stats = BudgetStats()

    @property
    def limit(self) -> float:
        return max(float(self._config.budget_min), self._config.budget_ratio * self.active)

    def take(self) -> bool:
        """A retry may start (and is counted in flight until ``give_back``), or not."""
        if self.retrying + 1 > self.limit:
            self.stats.denied += 1
            return False
        self.retrying += 1
        self.stats.retries += 1
        return True

    def give_back(self) -> None:
        self.retrying -= 1


def backoff(config: RetryConfig, retry: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2**retry)]."""
    ceiling = min(config.backoff_max, config.backoff_base * 2**retry)
    return rng.uniform(0.0, ceiling)


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds the backend asked to wait (``retry-after-ms``, else ``Retry-After``), if any."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now()).total_seconds())
