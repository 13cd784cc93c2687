"""One request's tries, by its plan: retries, failover between backends, fallback aliases.

Everything here happens before the first byte reached the client (a stream's try ends once
its first event is in hand), so a retry can never show the client two answers. A failure is
retried when another try may succeed (``failures.retryable``): connect errors, timeouts, 5xx,
malformed answers, a connection the backend closed, and a backend's 408/409/429. A 429's
``Retry-After`` is honoured up to ``max_retry_after``; a longer one ends the tries and goes
back to the client. A retry to a backend not tried yet goes at once; one to a backend tried
before waits an exponential backoff with full jitter. Every retry needs the budget's leave.

Each try is written down as it ends (``log``: the record's ``attempts``), with the backend,
the alias it served, when it started, how long it took, the status, how it ended and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.clock import now
from gateway.errors import GatewayError, UpstreamError, UpstreamPassthrough
from gateway.upstream.failures import (
    backend_failed,
    retryable,
    says_nothing_of_health,
    upstream_status,
)
from gateway.upstream.health import State
from gateway.upstream.retry import backoff, retry_after
from gateway.upstream.router import Route, RoutePlan

T = TypeVar("T")


class NoHealthyBackend(UpstreamError):
    """Every backend the request could use is ejected: nothing was tried (recorded as an
    upstream error, answered 503 with ``retry-after``)."""

    status = 503
    code = "upstream_unavailable"


class _Failed(Exception):
    """A try failed in a way another try may fix."""


async def run_plan(
    plan: RoutePlan, call: Callable[[Route], Awaitable[T]], log: list[dict[str, Any]]
) -> tuple[Route, T]:
    """The first route that answered and its answer; else the last failure, raised."""
    plan.budget.active += 1
    try:
        return await _Run(plan, log).go(call)
    finally:
        plan.budget.active -= 1


class _Run:
    def __init__(self, plan: RoutePlan, log: list[dict[str, Any]]) -> None:
        self.plan = plan
        self.log = log
        self.tries = 0
        self.last: GatewayError | None = None
        self.waits: dict[str, float] = {}  # a backend's Retry-After, by backend
        self.skipped: set[str] = set()

    async def go(self, call: Callable[[Route], Awaitable[T]]) -> tuple[Route, T]:
        for stage in self.plan.stages:
            routes = [r for r in stage.routes if self._usable(r)]
            for i in range(max(self.plan.retry.attempts, len(routes)) if routes else 0):
                route = routes[i % len(routes)]
                try:
                    return route, await self._try(route, call)
                except _Failed:
                    continue
        raise self._exhausted()

    def _usable(self, route: Route) -> bool:
        if self.plan.health.state(route.backend_name) is not State.EJECTED:
            return True
        self._skip(route)
        return False

    def _skip(self, route: Route) -> None:
        if route.backend_name not in self.skipped:
            self.skipped.add(route.backend_name)
            self.log.append(_entry(route, "ejected_skip", None, "the backend is ejected"))

    async def _try(self, route: Route, call: Callable[[Route], Awaitable[T]]) -> T:
        if not self._usable(route):  # ejected meanwhile (by this request's own failures?)
            raise _Failed
        retrying = self.tries > 0
        wait = self._wait(route) if retrying else 0.0
        if retrying and not self.plan.budget.take():
            self._stop("budget_exhausted", "no retry: the retry budget is spent")
        try:
            if wait:
                await asyncio.sleep(wait)
            # after the wait, so a probe is only taken by a try that is made at once
            if not self.plan.health.admit(route.backend_name):
                self._skip(route)  # ejected during the wait, or its one probe is out
                raise _Failed
            return await self._attempt(route, call)
        finally:
            if retrying:
                self.plan.budget.give_back()

    def _wait(self, route: Route) -> float:
        """Seconds before retrying on ``route``: none for a backend not tried yet."""
        name = route.backend_name
        if not any(e["backend"] == name and e["outcome"] != "ejected_skip" for e in self.log):
            return 0.0
        jitter = backoff(self.plan.retry, self.tries - 1, self.plan.rng)
        return max(jitter, self.waits.get(name, 0.0))

    async def _attempt(self, route: Route, call: Callable[[Route], Awaitable[T]]) -> T:
        health, name = self.plan.health, route.backend_name
        entry = _entry(route, "ok", None, None)
        self.log.append(entry)
        self.tries += 1
        started = time.perf_counter()
        try:
            value = await call(route)
        except GatewayError as exc:
            entry.update(ms=_ms(started), status=upstream_status(exc), error=exc.recorded)
            entry["outcome"] = "retried"
            self.last = exc
            if backend_failed(exc):
                health.failed(name, exc.recorded)
            elif says_nothing_of_health(exc):
                health.released(name)
            else:
                health.succeeded(name)  # a 4xx: the backend is up and answering
            self._after_failure(route, exc)
            raise _Failed from exc
        except asyncio.CancelledError:  # the client left, or a shutdown
            entry.update(ms=_ms(started), outcome="cancelled", error="the request was cancelled")
            health.released(name)
            raise
        except Exception as exc:  # not the backend's doing: a fault of the gateway's own
            entry.update(ms=_ms(started), outcome="failed", error=f"{type(exc).__name__}: {exc}")
            health.released(name)
            raise
        entry.update(ms=_ms(started), status=200)
        health.succeeded(name)
        return value

    def _after_failure(self, route: Route, exc: GatewayError) -> None:
        if not retryable(exc):
            self._stop("failed", None)
        if isinstance(exc, UpstreamPassthrough):
            asked = retry_after(exc.extra_headers)
            if asked is not None and asked > self.plan.retry.max_retry_after:
                self._stop("failed", f"no retry: Retry-After {asked:g} s is too long")
            if asked is not None:
                self.waits[route.backend_name] = asked

    def _stop(self, outcome: str, why: str | None) -> None:
        """No more tries: the last failure goes to the client, the record says why."""
        assert self.last is not None  # only after a failed try
        tried = [e for e in self.log if e["outcome"] != "ejected_skip"]
        tried[-1]["outcome"] = outcome
        if why is not None:
            tried[-1]["error"] = f"{tried[-1]['error']}; {why}"
        raise self.last

    def _exhausted(self) -> GatewayError:
        if self.last is not None:
            tried = [e for e in self.log if e["outcome"] != "ejected_skip"]
            tried[-1]["outcome"] = "failed"
            return self.last
        names = ", ".join(sorted(self.skipped)) or "none"
        error = NoHealthyBackend(
            f"No backend of model '{self.plan.alias}' is available: each is ejected after "
            f"repeated failures ({names}). Try again shortly.",
            headers={"retry-after": "1"},
        )
        return error


def _entry(route: Route, outcome: str, status: int | None, error: str | None) -> dict[str, Any]:
    return {
        "backend": route.backend_name,
        "model": route.upstream_model,
        "alias": route.alias,
        "started_at": now().isoformat(),
        "ms": None,
        "status": status,
        "outcome": outcome,
        "error": error,
    }


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
