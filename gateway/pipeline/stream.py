"""The streaming path: a pass-through SSE response that always finishes its record.

Everything that can fail before the first byte reaches the client (connect, upstream status,
the first chunk) fails as a normal HTTP error. After that, failures are in-band: one error
frame, no ``[DONE]``. A client that goes away cancels the pump; the upstream response is
closed (so generation stops) and the record is written with what was sent so far.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import httpx
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.clock import now
from gateway.errors import GatewayError, ServiceUnavailable, UpstreamError
from gateway.pipeline.assemble import StreamAssembler
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import Blocked, OutputStage
from gateway.pipeline.stages.record import finish
from gateway.pipeline.stages.respond import upstream_filtered
from gateway.pipeline.stream_events import error_frame, frame
from gateway.policy.compiled import CompiledRule
from gateway.records.status import Status
from gateway.upstream.client import mapped_errors
from gateway.upstream.router import Route
from gateway.upstream.sse import Event

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_DONE = b"data: [DONE]\n\n"
_SHUTDOWN = error_frame(
    ServiceUnavailable(
        "The gateway is shutting down; the stream was cut short.", code="gateway_shutdown"
    )
)
T = TypeVar("T")


class ProxyStream(Response):
    """An ASGI response that pumps upstream frames to the client and watches for disconnect."""

    def __init__(
        self,
        services: PipelineNeeds,
        route: Route,
        log: ExchangeRecord,
        response: httpx.Response,
        frames: AsyncIterator[Event],
        first: Event,
        *,
        strip_usage: bool,
        output: OutputStage | None,
        headers: dict[str, str],
        choices: int = 1,
        heavy: bool = False,
    ) -> None:
        self.status_code = 200
        # the output stage runs a model: its work runs in the detector pool, off the loop,
        # whenever a model is due to read the text
        self._heavy = heavy
        self.background = None
        self._output = output
        self._blocked: CompiledRule | None = None
        self._choices = choices
        self._refused: dict[int, str] = {}  # choice → the rule whose refusal ended it
        self._start_headers = [*_HEADERS, *((k.encode(), v.encode()) for k, v in headers.items())]
        self._s = services
        self._route = route
        self._log = log
        self._response = response
        self._frames = frames
        self._first = first
        self._strip_usage = strip_usage
        self._assembler = StreamAssembler()
        self._outcome: tuple[Status, str | None, str | None] | None = None
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
                await send({"type": "http.response.body", "body": _SHUTDOWN, "more_body": True})
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
        if self._outcome is not None:  # the stream is ending anyway: let it finish
            return
        self._end(Status.INCOMPLETE, "gateway_shutdown", "the gateway shut down mid-stream")
        self._cut_short = True
        scope.cancel()

    async def _pump(self, send: Send) -> None:
        event: Event | None = self._first
        while event is not None:
            frame = await self.frame(event)
            if frame:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                if self._log.first_byte_at is None:
                    self._log.first_byte_at = now()
            if self._outcome is not None:
                break
            event = await self._next()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _next(self) -> Event | None:
        try:
            with mapped_errors(self._route):
                return await anext(self._frames)
        except StopAsyncIteration:
            if self._outcome is not None:
                return None
            if not self._assembler.finished:
                self._end(Status.INCOMPLETE, "upstream_ended", "the backend ended the stream early")
                return None
            # Every choice finished but the backend sent no [DONE]: end the stream properly.
            return Event(raw=_DONE, data="[DONE]")
        except GatewayError as exc:
            status = Status.INCOMPLETE
            self._end(status, exc.code or exc.type, exc.message)
            return Event(raw=error_frame(exc), data=None)

    async def frame(self, event: Event) -> bytes:
        """The bytes to forward for one upstream event (possibly none)."""
        if event.done:
            try:
                flushed = await self._off_loop(self._flush)
            except Blocked as blocked:  # a heavy rule's last scan, at the end
                return self._block(blocked.rule)
            except GatewayError as failed:  # a check failed closed at the end
                self._end(Status.GATEWAY_ERROR, failed.code or failed.type, failed.message)
                return error_frame(failed)
            self._settle()
            return flushed + event.raw
        if event.data is None:
            return event.raw
        try:
            chunk = json.loads(event.data)
        except ValueError:
            exc = UpstreamError(
                "The backend sent a malformed chunk.", code="upstream_malformed_chunk"
            )
            self._end(Status.UPSTREAM_ERROR, exc.code, f"malformed chunk: {event.data[:200]}")
            return error_frame(exc)
        if not isinstance(chunk, dict) or "error" in chunk or event.event == "error":
            self._end(Status.UPSTREAM_ERROR, "upstream_stream_error", event.data[:2000])
            return event.raw
        self._assembler.add(chunk)
        changed = self._strip(chunk) if self._strip_usage else False
        if self._output is not None:
            return await self._output_frame(chunk)
        if not changed:
            return event.raw
        return frame(chunk) if chunk.get("choices") or chunk.get("usage") else b""

    async def _off_loop(self, work: Callable[[], T], *, models: bool = True) -> T:
        """The output stage's work: in the detector pool when it may run a model, else here."""
        return await self._s.detectors.evaluate(self._heavy and models, work)

    def _models_due(self, chunk: dict[str, Any]) -> bool:
        """Whether the chunk's text makes a model read: only then does it leave the loop."""
        assert self._output is not None
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            text = text if isinstance(text, str) else ""
            final = bool(choice.get("finish_reason"))
            if self._output.models_due(choice.get("index", 0), text, final=final):
                return True
        return False

    async def _output_frame(self, chunk: dict[str, Any]) -> bytes:
        try:
            models = self._heavy and self._models_due(chunk)
            await self._off_loop(partial(self._released, chunk), models=models)
        except Blocked as blocked:
            return self._block(blocked.rule)
        except GatewayError as exc:  # a check failed closed mid-stream
            self._end(Status.GATEWAY_ERROR, exc.code or exc.type, exc.message)
            return error_frame(exc)
        if self._refused and len(self._refused) >= self._choices:
            # Every choice was refused: nothing more of the backend's will be sent, so stop it.
            self._settle()
            return frame(chunk) + _DONE
        return frame(chunk) if chunk.get("choices") or chunk.get("usage") else b""

    def _strip(self, chunk: dict[str, Any]) -> bool:
        """Usage the gateway asked for on the client's behalf does not reach the client."""
        if "usage" not in chunk:
            return False
        del chunk["usage"]
        return True

    def _released(self, chunk: dict[str, Any]) -> None:
        """Replace each choice's new text by what the output stage releases; drop empty
        choices."""
        kept = []
        for choice in chunk.get("choices") or ():
            released = self._released_choice(choice)
            if released is not None:
                kept.append(released)
        chunk["choices"] = kept

    def _released_choice(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        assert self._output is not None
        delta = dict(choice.get("delta") or {})
        index = choice.get("index", 0)
        if self._output.refused(index):
            return None  # the rest of a refused choice is the backend's, never shown
        text = delta.get("content")
        try:
            released = self._output.feed(index, text) if isinstance(text, str) and text else ""
            if choice.get("finish_reason"):  # a heavy rule's last scan may block here
                released += self._output.finish(index)
        except Blocked as blocked:
            return self._refusal(index, blocked)
        if released or "content" in delta:
            delta["content"] = released
        if released or choice.get("finish_reason") or set(delta) - {"content"}:
            # Released text no longer lines up with the upstream chunk's token logprobs,
            # which could also spell out held-back or redacted text.
            return {**choice, "delta": delta, "logprobs": None}
        return None

    def _refusal(self, index: int, blocked: Blocked) -> dict[str, Any]:
        """A block that answers ends its choice with the rule's refusal; one that errs raises."""
        assert self._output is not None
        refusal = self._output.refuse(index, blocked.rule)
        if refusal is None:
            raise blocked
        self._refused[index] = blocked.rule.id
        return {
            "index": index,
            "delta": {"content": refusal},
            "logprobs": None,
            "finish_reason": "content_filter",
        }

    def _flush(self) -> bytes:
        """Text still held back when the stream ends without a finish chunk (or the refusal
        of a rule whose last scan blocks it). Raises Blocked for a block that errs."""
        if self._output is None:
            return b""
        choices: list[dict[str, Any]] = []
        for i in self._output.unfinished():
            try:
                rest = self._output.finish(i)
            except Blocked as blocked:
                choices.append(self._refusal(i, blocked))
                continue
            if rest:
                delta = {"content": rest}
                choices.append(
                    {"index": i, "delta": delta, "logprobs": None, "finish_reason": None}
                )
        return frame(self._chunk(choices)) if choices else b""

    def _block(self, rule: CompiledRule) -> bytes:
        """A block that errs, mid-stream: content_filter on every choice left, then [DONE]."""
        assert self._output is not None
        self._blocked = rule
        self._end(Status.BLOCKED, "policy_violation", f"output blocked by rule '{rule.id}'")
        indices = self._output.unfinished() or [0]
        choices: list[dict[str, Any]] = [
            {"index": i, "delta": {}, "logprobs": None, "finish_reason": "content_filter"}
            for i in indices
        ]
        return frame(self._chunk(choices)) + _DONE

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        head = self._assembler.head
        return {
            "id": head.get("id"),
            "object": "chat.completion.chunk",
            "created": head.get("created"),
            "model": head.get("model"),
            "choices": choices,
        }

    def _settle(self) -> None:
        """The stream ended as it should: whose, if anyone's, content_filter ended a choice."""
        if self._refused:
            rules = ", ".join(sorted(set(self._refused.values())))
            self._end(Status.BLOCKED, "policy_violation", f"output blocked by rule '{rules}'")
        elif (filtered := upstream_filtered(self._assembler.body()["choices"])) is not None:
            self._end(Status.UPSTREAM_FILTERED, "upstream_content_filter", filtered)
        elif not self._assembler.finished:  # llama-cpp-python cuts streams short this way
            self._end(Status.INCOMPLETE, "upstream_ended", "[DONE] before every choice finished")
        else:
            self._end(Status.OK, None, None)

    def _end(self, status: Status, error_type: str | None, message: str | None) -> None:
        if self._outcome is None:
            self._outcome = (status, error_type, message)

    def _finish(self) -> None:
        log = self._log
        if self._output is not None:
            self._output.close(self._blocked)
        status, error_type, message = self._outcome or (
            Status.CLIENT_DISCONNECTED,
            "client_disconnected",
            "the stream was cut short",
        )
        log.status, log.error_type, log.error_message = status, error_type, message
        log.response_body = self._assembler.body()
        log.response_model = self._assembler.head.get("model")
        log.take_usage(self._assembler.usage)
        log.ended_at = now()
        finish(self._s.recorder, log)
