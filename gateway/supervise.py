"""The lifespan's background tasks, watched: a task that fails is never silent.

Every task the gateway runs beside its requests (the recorder's writer, the policy watcher) is
registered here. When one ends for any reason other than the shutdown, its done-callback logs
the failure with its traceback and marks the gateway unready (``/readyz`` names the task and its
error); a *restarting* task is started again after a growing delay, and counts as ready again
once it has stayed up for a while, and a *fatal* one (the recorder, whose records spill by its
own logic) stays failed until the process is restarted. Shutdown stops the tasks in the reverse
order of their registration, and a task cancelled then is no failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.clock import now

log = logging.getLogger("gateway.supervise")

Factory = Callable[[], Coroutine[Any, Any, None]]
Stop = Callable[[], Awaitable[None]]

#: seconds before each restart of a failing task; the last one repeats
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: a restarted task that has run this long is healthy again (and its backoff starts over)
SETTLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Failure:
    error: str
    at: datetime


@dataclass(slots=True)
class _Watched:
    name: str
    task: asyncio.Task[None]
    factory: Factory | None  # None: fatal, never restarted
    stop: Stop | None  # how the shutdown ends it (default: cancel)
    restarts: int = 0
    streak: int = 0  # failures since it last settled: picks the backoff
    failure: Failure | None = None
    pending: list[asyncio.TimerHandle] = field(default_factory=list)


class Supervisor:
    def __init__(
        self, backoff: Sequence[float] = BACKOFF, settle_seconds: float = SETTLE_SECONDS
    ) -> None:
        self._backoff = tuple(backoff) or (1.0,)
        self._settle = settle_seconds
        self._watched: dict[str, _Watched] = {}
        self._stopping = False

    def restarting(self, name: str, factory: Factory) -> None:
        """Run ``factory()`` as a task, started again with backoff whenever it fails."""
        self._add(_Watched(name, self._spawn(name, factory), factory, None))

    def fatal(self, name: str, task: asyncio.Task[None], stop: Stop | None = None) -> None:
        """Watch a task someone else started; a failure is reported and never restarted.
        ``stop``: how the shutdown ends it (the recorder drains its queue), called also when
        the task has failed; without one, the task is cancelled."""
        self._add(_Watched(name, task, None, stop))

    def _add(self, watched: _Watched) -> None:
        if watched.name in self._watched:
            raise ValueError(f"a background task named {watched.name!r} is already supervised")
        self._watched[watched.name] = watched
        watched.task.add_done_callback(self._ended)

    @staticmethod
    def _spawn(name: str, factory: Factory) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(factory(), name=name)

    @property
    def failures(self) -> dict[str, Failure]:
        """The tasks that are failed now (or restarted and not yet settled), by name."""
        return {w.name: w.failure for w in self._watched.values() if w.failure is not None}

    @property
    def healthy(self) -> bool:
        return not self.failures

    def status(self) -> dict[str, dict[str, object]]:
        """Each task, for ``/readyz``: running, restarts, and the failure if there is one."""
        return {
            w.name: {
                "running": not w.task.done(),
                "restarts": w.restarts,
                "error": w.failure.error if w.failure else None,
                "failed_at": w.failure.at.isoformat() if w.failure else None,
            }
            for w in self._watched.values()
        }

    def _ended(self, task: asyncio.Task[None]) -> None:
        watched = self._watched.get(task.get_name())
        if self._stopping or watched is None or watched.task is not task:
            return
        error = _describe(task)
        watched.failure = Failure(error, now())
        exc = None if task.cancelled() else task.exception()
        if watched.factory is None:
            log.error(
                "BACKGROUND TASK FAILED: %s (%s); the gateway is unready until restarted",
                watched.name,
                error,
                exc_info=exc,
            )
            return
        delay = self._backoff[min(watched.streak, len(self._backoff) - 1)]
        watched.streak += 1
        log.error(
            "background task %s failed (%s); restarting in %gs",
            watched.name,
            error,
            delay,
            exc_info=exc,
        )
        loop = asyncio.get_running_loop()
        watched.pending = [loop.call_later(delay, self._restart, watched)]

    def _restart(self, watched: _Watched) -> None:
        if self._stopping or watched.factory is None:
            return
        watched.restarts += 1
        watched.task = self._spawn(watched.name, watched.factory)
        watched.task.add_done_callback(self._ended)
        loop = asyncio.get_running_loop()
        watched.pending = [loop.call_later(self._settle, self._settled, watched, watched.task)]
        log.warning("background task %s restarted (restart %d)", watched.name, watched.restarts)

    def _settled(self, watched: _Watched, task: asyncio.Task[None]) -> None:
        if watched.task is task and not task.done():
            watched.failure = None
            watched.streak = 0
            log.info("background task %s is running again", watched.name)

    async def stop(self) -> None:
        """End every task, the last registered first; none of it is reported as a failure."""
        self._stopping = True
        for watched in reversed(list(self._watched.values())):
            for handle in watched.pending:
                handle.cancel()
            await self._end(watched)

    @staticmethod
    async def _end(watched: _Watched) -> None:
        task = watched.task
        if watched.failure is not None:
            log.error("at shutdown, %s had failed: %s", watched.name, watched.failure.error)
        if watched.stop is not None:  # its owner's stop, also after a failure (to drain)
            try:
                await watched.stop()
            except Exception:
                log.exception("stopping background task %s failed", watched.name)
            return
        if task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the shutdown itself is being cancelled
        except Exception:  # it failed while being cancelled: say so, and keep shutting down
            log.exception("background task %s failed while stopping", watched.name)


def _describe(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled (not by the shutdown)"
    exc = task.exception()
    if exc is None:
        return "returned (it should run until the shutdown)"
    return f"{type(exc).__name__}: {exc}"[:500]


class Shutdown:
    """The server's shutdown as the app sees it: the server says when it begins (on SIGTERM)
    and how long its grace is; streams still running near the grace's end are cut then, each
    with an error frame and its record saying so, before the server cancels what is left."""

    #: streams are cut this long before the grace ends (at most a fifth of it)
    MARGIN = 1.0

    def __init__(self) -> None:
        self._cut = asyncio.Event()
        self.deadline: float | None = None

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def begin(self, grace: float) -> None:
        """The server stops accepting; in-flight work has ``grace`` seconds."""
        if self.deadline is not None:
            return
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + grace
        margin = min(self.MARGIN, grace / 5)
        loop.call_later(max(0.0, grace - margin), self._cut.set)
        log.info("shutting down: in-flight requests and streams have %gs", grace)

    async def cut(self) -> None:
        """Return when a stream still running must be cut short."""
        await self._cut.wait()
