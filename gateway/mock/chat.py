"""POST /v1/chat/completions for the mock upstream: replies, streams and faults."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import anyio

from gateway.mock.asgi import (
    SSE_HEADERS,
    BadRequest,
    Exchange,
    MockConnectionDrop,
    close_without_response,
    dumps,
    error_body,
    run_watched,
    send_bytes,
    send_json,
)
from gateway.mock.raw import MALFORMED, break_chunked, write_raw
from gateway.mock.script import Fault, Rule, Script

# A word and the whitespace after it, so streamed deltas concatenate back to the text.
_WORD = re.compile(r"\S+\s*")
_ROLE_DELTA = '{"role":"assistant","content":""}'
_DONE = b"data: [DONE]\n\n"
_MALFORMED = b"data: {not json\n\n"
_ERROR_FRAME = b"data: " + error_body("mock upstream error", "server_error", None, "mock_error")
_ERROR_FRAME += b"\n\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply text pre-split into stream pieces, with each piece's delta JSON."""

    pieces: tuple[str, ...]
    deltas: tuple[str, ...]

    @classmethod
    def of(cls, text: str, chunk_chars: int | None = None) -> Reply:
        if chunk_chars:  # fixed-size pieces, which may cut a word (or a key) in two
            text = text.rstrip()
            pieces = [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
            return cls(tuple(pieces), tuple(_content_delta(p) for p in pieces))
        pieces = _WORD.findall(text)
        if pieces:
            pieces[-1] = pieces[-1].rstrip()
        return cls(tuple(pieces), tuple(_content_delta(p) for p in pieces))

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def truncated(self, words: int) -> Reply:
        return Reply.of("".join(self.pieces[:words]))


def _content_delta(piece: str) -> str:
    return '{"content":' + json.dumps(piece) + "}"


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    reply: Reply | None


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """Everything needed to answer one chat request, decided before any I/O."""

    model: str
    stream: bool
    n: int
    include_usage: bool
    reply: Reply
    finish_reason: str
    usage: dict[str, int]
    token_delay: float
    fault: Fault | None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def _int_param(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"'{name}' must be an integer >= {minimum}.", name, "invalid_value")
    return value


def _required(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or not value:
        raise BadRequest(
            f"Missing required parameter: '{name}'.", name, "missing_required_parameter"
        )
    return value


def _completion_limit(body: dict[str, Any]) -> int | None:
    limits = [
        limit
        for limit in (
            _int_param(body, "max_tokens", 1),
            _int_param(body, "max_completion_tokens", 1),
        )
        if limit is not None
    ]
    return min(limits) if limits else None


class ChatHandler:
    """Turns chat requests into scripted replies; rules are compiled once up front."""

    def __init__(self, script: Script, token_delay: float) -> None:
        self._rules = tuple(
            _CompiledRule(
                rule, None if rule.reply is None else Reply.of(rule.reply, rule.chunk_chars)
            )
            for rule in script.rules
        )
        self._token_delay = token_delay
        self._echo = script.echo
        self._fired: dict[int, int] = {}  # how often each rule's fault fired (for `times`)

    def plan(self, body: Any) -> ChatPlan:
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        model: str = _required(body, "model", str)
        messages: list[Any] = _required(body, "messages", list)
        n = _int_param(body, "n", 1) or 1
        limit = _completion_limit(body)
        texts = [
            (m.get("role"), _content_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        ]
        last_user = next((text for role, text in reversed(texts) if role == "user"), "")
        rule, reply = self._resolve(model, last_user)
        finish_reason = (rule.finish_reason if rule is not None else None) or "stop"
        if limit is not None and limit < len(reply.pieces):
            reply, finish_reason = reply.truncated(limit), "length"
        stream = body.get("stream") is True
        options = body.get("stream_options")
        return ChatPlan(
            model=model,
            stream=stream,
            n=n,
            include_usage=stream
            and isinstance(options, dict)
            and options.get("include_usage") is True,
            reply=reply,
            finish_reason=finish_reason,
            usage=_usage(sum(len(text.split()) for _, text in texts), len(reply.pieces) * n),
            token_delay=self._token_delay
            if rule is None or rule.token_delay is None
            else rule.token_delay,
            fault=self._fault(rule),
        )

    def _fault(self, rule: Rule | None) -> Fault | None:
        """The rule's fault, unless it has fired its `times` already."""
        if rule is None or rule.fault is None:
            return None
        if rule.fault.times is None:
            return rule.fault
        fired = self._fired.get(id(rule), 0)
        if fired >= rule.fault.times:
            return None
        self._fired[id(rule)] = fired + 1
        return rule.fault

    def _resolve(self, model: str, last_user: str) -> tuple[Rule | None, Reply]:
        """The first matching rule (if any) and the reply it implies."""
        for compiled in self._rules:
            if compiled.rule.matches(model, last_user):
                if compiled.reply is not None:
                    return compiled.rule, compiled.reply
                return compiled.rule, self._echoed(last_user)
        return None, self._echoed(last_user)

    def _echoed(self, last_user: str) -> Reply:
        return Reply.of(self._echo.replace("{said}", last_user[:200]))

    async def respond(self, ex: Exchange, plan: ChatPlan) -> None:
        fault = plan.fault
        if plan.stream and (fault is None or (fault.status is None and fault.malformed is None)):
            await _stream(ex, plan)
        else:
            await _respond_whole(ex, plan)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def _fault_status_body(fault: Fault, status: int) -> bytes:
    if fault.body is not None:
        return dumps(fault.body)
    if status == 429:
        return error_body("Mock rate limit reached.", "requests", None, "rate_limit_exceeded")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_body(f"Mock upstream fault (HTTP {status}).", kind, None, "mock_fault")


async def _respond_whole(ex: Exchange, plan: ChatPlan) -> None:
    fault = plan.fault
    if fault is not None and fault.first_byte_delay:
        delay = fault.first_byte_delay
        if await run_watched(ex.receive, lambda: anyio.sleep(delay)):
            ex.record["outcome"] = "client_disconnected"
            return
    extra = [(k.lower().encode(), v.encode()) for k, v in fault.headers.items()] if fault else []
    if fault is not None and fault.malformed is not None:
        ex.record["outcome"] = "fault"
        await write_raw(ex.receive, MALFORMED[fault.malformed])
    elif fault is not None and fault.status is not None and fault.text is not None:
        ex.record["outcome"] = "fault"
        body = fault.text.encode()
        await send_bytes(ex.send, fault.status, body, fault.content_type, extra)
    elif fault is not None and fault.status is not None:
        ex.record["outcome"] = "fault"
        await send_json(ex.send, fault.status, _fault_status_body(fault, fault.status), extra)
    elif fault is not None and fault.drop_after is not None:
        ex.record["outcome"] = "fault"
        await close_without_response(ex.receive)
    else:
        await send_json(ex.send, 200, _completion_body(plan))


def _completion_body(plan: ChatPlan) -> bytes:
    text = plan.reply.text
    return dumps(
        {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": plan.model,
            "system_fingerprint": "fp_mock",
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
                for i in range(plan.n)
            ],
            "usage": plan.usage,
        }
    )


async def _stream(ex: Exchange, plan: ChatPlan) -> None:
    await ex.send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})
    writer = _StreamWriter(ex, plan)
    disconnected = await run_watched(ex.receive, writer.run)
    if not writer.finished and (disconnected or writer.gone):
        ex.record["outcome"] = "client_disconnected"
    if writer.dropped:
        # Raised outside the task group so the server sees this exception, not a group.
        raise MockConnectionDrop("scripted mid-stream connection drop")
    if writer.broken:
        await write_raw(ex.receive, b"")  # the connection closed at last


class _SendFailed(Exception):
    pass


class _StreamWriter:
    """Writes one SSE chat stream, counting content chunks for faults and the log."""

    def __init__(self, ex: Exchange, plan: ChatPlan) -> None:
        self._ex = ex
        self._plan = plan
        created = int(time.time())
        # Every chunk shares this envelope; building it once keeps each frame a
        # string concatenation instead of a json.dumps of a nested dict.
        self._head = (
            f'data: {{"id":"{_completion_id()}","object":"chat.completion.chunk",'
            f'"created":{created},"model":{json.dumps(plan.model)},'
            '"system_fingerprint":"fp_mock","choices":['
        )
        self._tail = '],"usage":null}\n\n' if plan.include_usage else "]}\n\n"
        fault = plan.fault
        self._fault_after = fault.chunks_before() if fault is not None else None
        self.finished = False
        self.gone = False
        self.dropped = False
        self.broken = False

    def _frame(self, index: int, delta: str, finish_reason: str | None) -> bytes:
        finish = "null" if finish_reason is None else f'"{finish_reason}"'
        return (
            f'{self._head}{{"index":{index},"delta":{delta},"logprobs":null,'
            f'"finish_reason":{finish}}}{self._tail}'
        ).encode()

    async def _emit(self, data: bytes, more_body: bool = True) -> None:
        try:
            await self._ex.send(
                {"type": "http.response.body", "body": data, "more_body": more_body}
            )
        except Exception as exc:  # any failure to write means the peer is gone
            raise _SendFailed from exc

    async def run(self) -> None:
        try:
            await self._write()
        except _SendFailed:
            self.gone = True

    async def _write(self) -> None:
        plan = self._plan
        if plan.fault is not None and plan.fault.first_byte_delay:
            await anyio.sleep(plan.fault.first_byte_delay)
        for i in range(plan.n):
            await self._emit(self._frame(i, _ROLE_DELTA, None))
        for delta in plan.reply.deltas:
            if plan.token_delay:
                await anyio.sleep(plan.token_delay)
            for i in range(plan.n):
                if self._ex.record["chunks_sent"] == self._fault_after:
                    await self._fire()
                    return
                await self._emit(self._frame(i, delta, None))
                self._ex.record["chunks_sent"] += 1
        if self._fault_after is not None:
            await self._fire()
            return
        await self._finish()

    async def _finish(self) -> None:
        plan = self._plan
        for i in range(plan.n):
            await self._emit(self._frame(i, "{}", plan.finish_reason))
        if plan.include_usage:
            usage = dumps(plan.usage).decode()
            await self._emit(f'{self._head}],"usage":{usage}}}\n\n'.encode())
        await self._emit(_DONE, more_body=False)
        self.finished = True

    async def _break(self) -> None:
        self.broken = self.finished = True
        await break_chunked(self._ex.receive)  # until the client gives up (`run_watched`)

    async def _fire(self) -> None:
        fault = self._plan.fault
        assert fault is not None  # only called when a fault counter is set
        self._ex.record["outcome"] = "fault"
        if fault.drop_after is not None:
            self.dropped = True
        elif fault.broken_chunk_after is not None:
            await self._break()
            return
        elif fault.malformed_after is not None:
            await self._emit(_MALFORMED)
            await self._emit(_DONE, more_body=False)
        elif fault.done_after is not None:
            await self._emit(_DONE, more_body=False)
        else:
            await self._emit(_ERROR_FRAME, more_body=False)
        self.finished = True
