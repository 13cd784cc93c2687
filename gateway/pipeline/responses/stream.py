"""A Responses API stream (``POST /v1/responses`` with ``stream: true``): ``ResponsesFrames``
are its ``stream.Frames``, over the backend's own typed events (``responses: native``) or over
the events a chat completion stream is translated into (``events.ChatEvents``), the policy
applied to both alike (``stream_rules.Governed``). The client's events are numbered again
(``sequence_number`` from 0, ``output_index`` without gaps) since the gateway holds some back
and adds others. However the stream ends, the client's last event says how: the Response in
``response.completed``, ``response.incomplete`` (a block that answers, a length limit, the
backend's filter), or an ``error`` event then ``response.failed`` (a block that errs, a check
that failed closed, a backend failure mid-stream, the gateway's shutdown).

The record keeps the Response as the backend gave it (the gateway's translation on a
translated backend), before the gateway's output changes, as chat records keep the backend's
answer; the decision says what changed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from gateway.errors import GatewayError, ServiceUnavailable, UpstreamError
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.responses.events import TERMINAL, ChatEvents, spec_fields, sse
from gateway.pipeline.responses.stream_rules import Ended, Events, Governed
from gateway.pipeline.stream import Ending, ProxyStream
from gateway.pipeline.stream_events import OwnFrames, comment_only
from gateway.pipeline.stream_open import Build, open_stream
from gateway.policy.decision import Decision
from gateway.policy.tools import ToolScope
from gateway.records.status import Status
from gateway.upstream.router import Route, RoutePlan
from gateway.upstream.sse import Event

_SHUTDOWN = ServiceUnavailable(
    "The gateway is shutting down; the stream was cut short.", code="gateway_shutdown"
)

_ITEM_EVENTS = ("response.output_item.added", "response.output_item.done")
_PIECES = ("response.output_text.delta", "response.function_call_arguments.delta")


class ResponsesFrames:
    """What a Responses stream's upstream events become on the wire (see the module's doc)."""

    def __init__(
        self,
        services: PipelineNeeds,
        ending: Ending,
        *,
        shell: dict[str, Any],
        output: OutputStage | None,
        tools: ToolScope,
        decision: Decision,
        heavy: bool,
        translate: bool,
    ) -> None:
        self._ending = ending
        self._output = output
        self._tools = tools
        self._decision = decision
        self._chat = ChatEvents(shell) if translate else None
        self._rules = Governed(services, output, tools, heavy=heavy)
        self._rules.response = {**spec_fields(shell), "object": "response"}
        self._seq = 0
        self._backend: dict[str, Any] | None = None  # the backend's final Response
        self._so_far = _SoFar()  # a native backend's items, as far as they got
        self._ended = False  # the client had its last event
        self._delivered: dict[str, Any] | None = None
        self._own = OwnFrames()

    def _end(self, status: Status, code: str | None, message: str | None) -> None:
        self._ending.end(status, code, message)

    # Frames.

    async def frame(self, event: Event) -> bytes:
        if self._own.mine(event):
            return event.raw  # the gateway's own frames (an error mid-stream)
        try:
            given = self._given(event)
        except ValueError:
            exc = UpstreamError(
                "The backend sent a malformed event.", code="upstream_malformed_chunk"
            )
            said = event.raw.decode(errors="replace")[:200]
            self._end(Status.UPSTREAM_ERROR, exc.code, f"malformed event: {said}")
            return self._bytes(self._rules.fail(exc.code or exc.type, exc.message))
        out: Events = []
        try:
            for one in given:
                out += await self._one(one)
        except Ended as ended:
            self._end(ended.status, ended.code, ended.message)
            out += ended.events
        return self._bytes(out)

    def _given(self, event: Event) -> Events:
        """The Responses events an upstream event is (raises ValueError when unreadable, or
        when it has no data: the gateway's own frames are told apart by ``OwnFrames``)."""
        if event.data is None:
            if comment_only(event):
                return []
            raise ValueError("an event without data")
        if self._chat is not None:
            if event.done:
                return self._chat.done() if self._chat.started else []
            chunk = json.loads(event.data or "")
            if not isinstance(chunk, dict):
                raise ValueError("not an object")
            if "error" in chunk or event.event == "error":
                return [_upstream_error(chunk.get("error"))]
            return self._chat.chunk(chunk)
        if event.done:
            return []
        parsed = json.loads(event.data or "")
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        if event.event == "error" and parsed.get("type") != "error":
            return [_upstream_error(parsed.get("error", parsed))]
        return [parsed]

    async def _one(self, event: dict[str, Any]) -> Events:
        kind = event.get("type")
        self._note_backend(event)
        if kind == "error":
            message = str(event.get("message") or "the backend's stream failed")[:2000]
            code = str(event.get("code") or "upstream_stream_error")
            raise Ended(self._rules.fail(code, message), Status.UPSTREAM_ERROR, code, message)
        out = await self._rules.process(event)
        if kind in TERMINAL:
            self._settle(out[-1])
        return out

    def _last(self, events: Events) -> None:
        """The client's terminal event, if these end the stream: its Response is delivered."""
        for event in events:
            if event.get("type") in TERMINAL and isinstance(event.get("response"), dict):
                self._delivered = event["response"]

    def _note_backend(self, event: dict[str, Any]) -> None:
        """What the backend said, for the record: its final Response, or as far as it got."""
        if event.get("type") in TERMINAL and isinstance(event.get("response"), dict):
            self._backend = event["response"]
        elif self._chat is None:
            self._so_far.add(event)

    def _settle(self, last: dict[str, Any]) -> None:
        """The backend's terminal event reached the client: how the exchange ended."""
        self._ended = True
        response = last.get("response") or {}
        reason = (response.get("incomplete_details") or {}).get("reason")
        if last.get("type") == "response.failed":
            error = response.get("error") or {}
            self._end(Status.UPSTREAM_ERROR, "upstream_stream_error", str(error)[:2000])
        elif self._rules.blocked_calls and self._tools.blocks_calls:
            self._end(Status.BLOCKED, "policy_violation", "output blocked by rule 'tools.call'")
        elif reason == "content_filter":
            self._end(Status.UPSTREAM_FILTERED, "upstream_content_filter", "content_filter")
        else:
            self._end(Status.OK, None, None)

    def _bytes(self, events: Events) -> bytes:
        """The client's events, numbered, as SSE."""
        self._last(events)
        out = []
        for event in events:
            out.append(sse({**event, "sequence_number": self._seq}))
            self._seq += 1
        return b"".join(out)

    def upstream_ended(self) -> Event | None:
        if self._chat is not None and self._chat.finished and not self._ended:
            return Event(raw=b"data: [DONE]\n\n", data="[DONE]")  # every choice had finished
        if self._ended:
            return None
        message = "the backend ended the stream early"
        self._end(Status.INCOMPLETE, "upstream_ended", message)
        return Event(raw=self._own.made(self._bytes(self._rules.fail("upstream_ended", message))),
                     data=None)

    def error(self, exc: GatewayError) -> bytes:
        self._ended = True
        return self._own.made(self._bytes(self._rules.fail(exc.code or exc.type, exc.message)))

    def shutdown(self) -> bytes:
        return self.error(_SHUTDOWN)

    @property
    def delivered(self) -> dict[str, Any]:
        """The Response as the client had it (the released texts, without blocked calls)."""
        if self._delivered is not None:
            return self._delivered
        return {**self._rules.response, "status": "incomplete", "output": self._rules.output}

    def close(self, log: ExchangeRecord) -> None:
        if self._output is not None:
            self._output.close(self._rules.blocked)
        self._tools.note_calls(self._decision, self._rules.verdicts, enforced=True)
        body = self._record_body()
        log.response_body = body
        log.response_id = body.get("id") if isinstance(body.get("id"), str) else None
        log.response_model = body.get("model")
        usage = body.get("usage")
        if isinstance(usage, dict):
            log.take_usage(
                {"prompt_tokens": usage.get("input_tokens"),
                 "completion_tokens": usage.get("output_tokens"),
                 "total_tokens": usage.get("total_tokens")}
            )

    def _record_body(self) -> dict[str, Any]:
        """The Response as the backend gave it (or as far as it got)."""
        if self._chat is not None:
            return self._chat.so_far()
        if self._backend is not None:
            return self._backend
        return {**self._rules.response, "status": "incomplete", "output": self._so_far.output()}


class _SoFar:
    """A native backend's output items as far as its events went (a stream cut short): each
    item as added, its texts and arguments from their deltas, or as done."""

    def __init__(self) -> None:
        self._items: dict[int, dict[str, Any]] = {}
        self._pieces: dict[tuple[int, int | None], list[str]] = {}

    def add(self, event: dict[str, Any]) -> None:
        kind, at, delta = event.get("type"), event.get("output_index"), event.get("delta")
        if not isinstance(at, int):
            return
        if kind in _ITEM_EVENTS and isinstance(event.get("item"), dict):
            self._items[at] = copy.deepcopy(event["item"])
            if kind == "response.output_item.done":
                self._pieces = {k: v for k, v in self._pieces.items() if k[0] != at}
        elif kind == "response.content_part.added" and isinstance(event.get("part"), dict):
            content = self._items.get(at, {}).setdefault("content", [])
            if isinstance(content, list):
                content.append(copy.deepcopy(event["part"]))
        elif kind in _PIECES and isinstance(delta, str):
            where = event.get("content_index") if kind == _PIECES[0] else None
            self._pieces.setdefault((at, where), []).append(delta)

    def output(self) -> list[dict[str, Any]]:
        for (at, where), pieces in self._pieces.items():
            item, text = self._items.get(at), "".join(pieces)
            if item is None:
                continue
            item["status"] = "incomplete"
            parts = item.get("content")
            if where is None:
                item["arguments"] = text
            elif isinstance(parts, list) and isinstance(where, int) and where < len(parts):
                parts[where]["text"] = text
        return [self._items[i] for i in sorted(self._items)]


def _upstream_error(error: Any) -> dict[str, Any]:
    """A backend's error frame (chat's ``{"error": ...}``) as a Responses ``error`` event."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    return {
        "type": "error",
        "code": error.get("code") or error.get("type") or "upstream_stream_error",
        "message": str(error.get("message") or "the backend's stream failed"),
        "param": error.get("param"),
    }


async def open_responses_stream(
    services: PipelineNeeds,
    plan: RoutePlan,
    record: ExchangeRecord,
    build: Build,
    *,
    shell: dict[str, Any],
    output: OutputStage,
    tools: ToolScope,
    decision: Decision,
    headers: dict[str, str],
    heavy: bool,
    delivered: Callable[[dict[str, Any]], None] | None = None,
) -> ProxyStream:
    """Open a Responses stream by the plan: each route tried gets what ``build`` makes for it
    (``/responses`` on a native backend, ``/chat/completions`` on one translated, asked for
    usage when the backend takes ``stream_options``). ``delivered`` is told, as the stream
    closes, the Response as the client had it (for what a later turn is rebuilt from)."""
    active = output if output.active else None

    def built(route: Route) -> tuple[str, dict[str, Any]]:
        path, body = build(route)
        if _native(route):
            return path, body
        body = {**body, "stream": True}  # a translated route always streams (else: whole JSON)
        if not route.backend.stream_usage:
            return path, body
        options = {**(body.get("stream_options") or {}), "include_usage": True}
        return path, {**body, "stream_options": options}

    def frames(ending: Ending, _: bool, route: Route) -> ResponsesFrames:
        made = ResponsesFrames(
            services, ending, shell=shell, output=active, tools=tools, decision=decision,
            heavy=heavy, translate=not _native(route),
        )
        if delivered is not None:
            record.on_finish.insert(0, lambda _: delivered(made.delivered))
        return made

    return await open_stream(
        services, plan, record, built, inject_usage=False, output=output, headers=headers,
        heavy=heavy, frames=frames,
    )


def _native(route: Route) -> bool:
    return route.backend.responses == "native"
