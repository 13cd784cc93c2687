"""The streaming path: a pass-through SSE response that always finishes its record.

Everything that can fail before the first byte reaches the client (connect, upstream status,
the first chunk) fails as a normal HTTP error. After that, failures are in-band: one error
frame, no ``[DONE]``. A client that goes away cancels the pump; the upstream response is
closed (so generation stops) and the record is written with what was sent so far.

``ProxyStream`` is the lifecycle every stream shares (the client's leaving, the server's
shutdown, the upstream's end, the record); what each upstream event becomes on the wire is
its ``Frames``' (``stream_chat.ChatFrames`` for chat completions and legacy completions,
``responses/stream.py`` for the Responses API), which says how the stream ended through the
``Ending`` the two share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import anyio
import httpx
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.clock import now
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.stages.record import finish
from gateway.pipeline.stream_events import error_frame
from gateway.records.status import Status
from gateway.upstream.client import mapped_errors
from gateway.upstream.router import Route
from gateway.upstream.sse import Event

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_SHUTDOWN = ServiceUnavailable(
    "The gateway is shutting down; the stream was cut short.", code="gateway_shutdown"
)

Outcome = tuple[Status, str | None, str | None]


class Ending:
    """How a stream ended (status, error type, message): the first to say wins."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome: Outcome | None = None

    def end(self, status: Status, error_type: str | None, message: str | None) -> None:
        if self.outcome is None:
            self.outcome = (status, error_type, message)

    @property
    def ended(self) -> bool:
        return self.outcome is not None


class Frames(Protocol):
    """What one kind of stream does with the upstream's events; it ends the stream by
    ``Ending.end`` (a block, a malformed chunk, a check that failed) and the pump stops."""

    async def frame(self, event: Event) -> bytes:
        """The bytes to forward for one upstream event (possibly none)."""
        ...

    def upstream_ended(self) -> Event | None:
        """The upstream's events ran out before its end event: the event to end the stream
        properly with (everything finished, only the end was missing), or None once the
        ``Ending`` says why the stream is incomplete."""
        ...

    def error(self, exc: GatewayError) -> bytes:
        """The in-band frame that reports a failure mid-stream (the stream ends after it)."""
        ...

    def shutdown(self) -> bytes:
        """The frame that says the gateway is shutting down under the stream."""
        ...

    def close(self, log: ExchangeRecord) -> None:
        """The stream is over, however it ended: the output stage's outcomes to the decision,
        and to the record what the backend sent (its body, model and usage)."""
        ...


class ProxyStream(Response):
    """An ASGI response that pumps upstream frames to the client and watches for disconnect."""

    def __init__(
        self,
        services: PipelineNeeds,
        route: Route,
        log: ExchangeRecord,
        response: httpx.Response,
        events: AsyncIterator[Event],
        first: Event,
        frames: Frames,
        ending: Ending,
        *,
        headers: dict[str, str],
    ) -> None:
        self.status_code = 200
        self.background = None
        self._start_headers = [*_HEADERS, *((k.encode(), v.encode()) for k, v in headers.items())]
        self._s = services
        self._route = route
        self._log = log
        self._response = response
        self._events = events
        self._first = first
        self._frames = frames
        self._ending = ending
        self._cut_short = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self._start_headers}
            await send(start)
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, receive, group.cancel_scope)
                group.start_soon(self._cut_at_shutdown, group.cancel_scope)
                await self._pump(send)
                group.cancel_scope.cancel()
            if self._cut_short:
                body = self._frames.shutdown()
                await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except* (OSError, ClientDisconnect):
            self._end(Status.CLIENT_DISCONNECTED, "client_disconnected", "client went away")
        except* asyncio.CancelledError:
            # Not the client (its leaving is recorded first, by the watcher): the server is
            # stopping under the stream.
            self._end(Status.INCOMPLETE, "gateway_shutdown", "cancelled at shutdown")
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._response.aclose()
                self._finish()

    async def discard(self) -> None:
        """Close the upstream response of a stream that will never be sent (its client left
        as it opened); the caller records the exchange."""
        with anyio.CancelScope(shield=True):
            await self._response.aclose()

    async def _watch(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._end(Status.CLIENT_DISCONNECTED, "client_disconnected", "client went away")
        scope.cancel()

    async def _cut_at_shutdown(self, scope: anyio.CancelScope) -> None:
        """The server's grace is ending with the stream still running: it ends now, with an
        error frame, and its record says so (not a client's disconnect)."""
        await self._s.shutdown.cut()
        if self._ending.ended:  # the stream is ending anyway: let it finish
            return
        self._end(Status.INCOMPLETE, "gateway_shutdown", "the gateway shut down mid-stream")
        self._cut_short = True
        scope.cancel()

    async def _pump(self, send: Send) -> None:
        event: Event | None = self._first
        while event is not None:
            frame = await self._frames.frame(event)
            if frame:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                if self._log.first_byte_at is None:
                    self._log.first_byte_at = now()
            if self._ending.ended:
                break
            event = await self._next()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _next(self) -> Event | None:
        try:
            with mapped_errors(self._route):
                return await anext(self._events)
        except StopAsyncIteration:
            if self._ending.ended:
                return None
            return self._frames.upstream_ended()
        except GatewayError as exc:
            self._end(Status.INCOMPLETE, exc.code or exc.type, exc.message)
            return Event(raw=self._frames.error(exc), data=None)

    def _end(self, status: Status, error_type: str | None, message: str | None) -> None:
        self._ending.end(status, error_type, message)

    def _finish(self) -> None:
        log = self._log
        self._frames.close(log)
        status, error_type, message = self._ending.outcome or (
            Status.CLIENT_DISCONNECTED,
            "client_disconnected",
            "the stream was cut short",
        )
        log.status, log.error_type, log.error_message = status, error_type, message
        log.ended_at = now()
        finish(self._s.recorder, log)


def shutdown_frame() -> bytes:
    """Chat's in-band frame for a stream the gateway's shutdown cuts short."""
    return error_frame(_SHUTDOWN)
