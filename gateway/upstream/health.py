"""Passive health: a circuit breaker per backend, fed by the live requests' outcomes.

``failures`` consecutive failures (connect errors, timeouts, 5xx, malformed answers; never a
4xx or a 429, which say the backend is alive) eject a backend for ``ejection_seconds``, doubled
at each ejection in a row up to ``max_ejection_seconds``. When the time is up the backend is
half-open: the next request that would use it is let through as its probe (one at a time); a
success closes the breaker (and forgets the ejections), a failure ejects it again, for longer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.config import HealthConfig


class State(StrEnum):
    HEALTHY = "healthy"
    EJECTED = "ejected"
    HALF_OPEN = "half_open"  # the ejection is over: the next request probes it


@dataclass(slots=True)
class _Backend:
    failures: int = 0  # consecutive
    ejections: int = 0  # in a row, since the last success
    ejected_until: float | None = None  # on the monotonic clock
    probing: bool = False
    last_error: str | None = None
    ejected_total: int = 0  # since the start, for the metrics


class HealthBoard:
    def __init__(
        self,
        config: HealthConfig,
        backends: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        self._backends = {name: _Backend() for name in backends}

    @property
    def names(self) -> list[str]:
        return sorted(self._backends)

    def state(self, name: str) -> State:
        backend = self._backends[name]
        if backend.ejected_until is None:
            return State.HEALTHY
        if self._clock() < backend.ejected_until:
            return State.EJECTED
        return State.HALF_OPEN

    def admit(self, name: str) -> bool:
        """Whether a request may use the backend now; a half-open one's probe is taken."""
        backend = self._backends[name]
        state = self.state(name)
        if state is State.HEALTHY:
            return True
        if state is State.EJECTED or backend.probing:
            return False
        backend.probing = True
        return True

    def succeeded(self, name: str) -> None:
        backend = self._backends[name]
        backend.failures = backend.ejections = 0
        backend.ejected_until, backend.probing = None, False

    def failed(self, name: str, error: str) -> None:
        backend = self._backends[name]
        backend.failures += 1
        backend.last_error = error[:300]
        if backend.probing or backend.failures >= self._config.failures:
            backend.ejections += 1
            backend.ejected_total += 1
            seconds = self._config.ejection_seconds * 2 ** (backend.ejections - 1)
            seconds = min(seconds, self._config.max_ejection_seconds)
            backend.ejected_until = self._clock() + seconds
            backend.probing = False

    def released(self, name: str) -> None:
        """An attempt that said nothing of the backend's health (a 429, a client that left):
        a probe it held is given back for the next request."""
        self._backends[name].probing = False

    def report(self, name: str) -> dict[str, Any]:
        backend = self._backends[name]
        state = self.state(name)
        until = None
        if state is State.EJECTED and backend.ejected_until is not None:
            until = time.time() + (backend.ejected_until - self._clock())
        return {
            "state": str(state),
            "consecutive_failures": backend.failures,
            "ejections": backend.ejections,
            "ejected_until": until,  # unix seconds, while ejected
            "last_error": backend.last_error,
        }

    def ejected_total(self, name: str) -> int:
        """Ejections since the start (the metrics' counter)."""
        return self._backends[name].ejected_total

    def available(self, name: str) -> bool:
        """For readiness: not inside an ejection (a half-open backend is waiting to serve)."""
        return self.state(name) is not State.EJECTED
