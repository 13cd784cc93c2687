"""POST /v1/chat/completions for the mock upstream: replies, tool calls, structured output,
logprobs, streams and faults."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.mock.answer import respond_whole, stream, streams
from gateway.mock.asgi import BadRequest, Exchange, dumps
from gateway.mock.chat_plan import NO_REPLY, ChatPlan, Reply
from gateway.mock.chat_stream import chat_frames, completion_id
from gateway.mock.logprobs import chat_logprobs
from gateway.mock.schema_instance import instance
from gateway.mock.script import Fault, Rule, Script
from gateway.mock.tools import (
    ToolCall,
    argument_pieces,
    chat_tools,
    make_call,
    pick_call,
    salt_of,
    tool_said,
)

_TOOL_RESULT_ROLES = ("tool", "function")


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    reply: Reply | None


@dataclass(frozen=True, slots=True)
class _Conversation:
    """What the answer depends on in a chat request's messages."""

    texts: list[tuple[Any, str]]
    last_user: str
    tool_result: str | None  # the last message's content, when it is a tool's result


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") in ("text", "input_text", "output_text")
            and isinstance(part.get("text"), str)
        )
    return ""


def _conversation(messages: list[Any]) -> _Conversation:
    dicts = [m for m in messages if isinstance(m, dict)]
    texts = [(m.get("role"), _content_text(m.get("content"))) for m in dicts]
    last_user = next((text for role, text in reversed(texts) if role == "user"), "")
    tool_result = texts[-1][1] if texts and texts[-1][0] in _TOOL_RESULT_ROLES else None
    return _Conversation(texts, last_user, tool_result)


def int_param(body: dict[str, Any], name: str, minimum: int, maximum: int | None = None) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise BadRequest(f"'{name}' must be an integer {bounds}.", name, "invalid_value")
    return value


def required(body: dict[str, Any], name: str, kind: type) -> Any:
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
            int_param(body, "max_tokens", 1),
            int_param(body, "max_completion_tokens", 1),
        )
        if limit is not None
    ]
    return min(limits) if limits else None


def top_logprobs(body: dict[str, Any]) -> int | None:
    """None unless `logprobs` is true; then `top_logprobs` (0 to 20, default 0)."""
    top = int_param(body, "top_logprobs", 0, 20)
    if body.get("logprobs") is not True:
        if top is not None:
            message = "'top_logprobs' requires 'logprobs' to be true."
            raise BadRequest(message, "top_logprobs", "invalid_value")
        return None
    return top or 0


def structured_text(response_format: Any, said: str, echo: str) -> str | None:
    """The JSON text a `response_format` (or Responses `text.format`) asks for, if any."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return json.dumps({"reply": echo})
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema", response_format)  # Responses: flat
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise BadRequest("'json_schema.schema' must be an object.", "response_format")
    return json.dumps(instance(schema, said, strict=spec.get("strict") is True))


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
        model: str = required(body, "model", str)
        messages: list[Any] = required(body, "messages", list)
        n = int_param(body, "n", 1) or 1
        limit = _completion_limit(body)
        talk = _conversation(messages)
        rule, reply = self._resolve(model, talk.last_user)
        reply, calls, legacy = self._answer(body, talk, rule, reply)
        finish_reason: str = (rule.finish_reason if rule is not None else None) or "stop"
        if calls:
            finish_reason = "function_call" if legacy else "tool_calls"
        elif limit is not None and limit < len(reply.pieces):
            reply, finish_reason = reply.truncated(limit), "length"
        stream = body.get("stream") is True
        options = body.get("stream_options")
        produced = sum(len(argument_pieces(c.arguments)) for c in calls) or len(reply.pieces)
        return ChatPlan(
            model=model,
            stream=stream,
            n=n,
            include_usage=stream
            and isinstance(options, dict)
            and options.get("include_usage") is True,
            reply=reply,
            finish_reason=finish_reason,
            usage=_usage(sum(len(text.split()) for _, text in talk.texts), produced * n),
            token_delay=self._token_delay
            if rule is None or rule.token_delay is None
            else rule.token_delay,
            fault=self._fault(rule),
            tool_calls=calls,
            legacy_function=legacy,
            top_logprobs=top_logprobs(body),
        )

    def _answer(
        self, body: dict[str, Any], talk: _Conversation, rule: Rule | None, reply: Reply
    ) -> tuple[Reply, tuple[ToolCall, ...], bool]:
        """The reply text, or the tool calls in its place (and whether they are legacy)."""
        scripted = rule is not None and rule.reply is not None
        if talk.tool_result is not None:
            return (reply if scripted else Reply.of(tool_said(talk.tool_result))), (), False
        if rule is not None and rule.tool_calls:
            salt = salt_of(body.get("messages"))
            calls = (make_call(c.name, c.arguments, salt, i) for i, c in enumerate(rule.tool_calls))
            return NO_REPLY, tuple(calls), False
        tools, legacy = chat_tools(body)
        choice = body.get("function_call" if legacy else "tool_choice")
        call = pick_call(tools, choice, talk.last_user, body.get("messages"))
        if call is not None:
            return NO_REPLY, (call,), legacy
        if not scripted:
            said = talk.last_user[:200]
            text = structured_text(body.get("response_format"), said, reply.text)
            if text is not None:
                return Reply.of(text), (), False
        return reply, (), False

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
        if streams(plan.stream, plan.fault):
            await stream(ex, chat_frames(plan), plan.fault, plan.token_delay)
        else:
            await respond_whole(ex, plan.fault, lambda: _completion_body(plan))


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _message(plan: ChatPlan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if plan.legacy_function and plan.tool_calls:
        call = plan.tool_calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
    elif plan.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in plan.tool_calls
        ]
    else:
        message["content"] = plan.reply.text
    return message


def _completion_body(plan: ChatPlan) -> bytes:
    message = _message(plan)
    logprobs = None
    if plan.top_logprobs is not None and not plan.tool_calls:
        logprobs = chat_logprobs(plan.reply.pieces, plan.top_logprobs)
    return dumps(
        {
            "id": completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": plan.model,
            "system_fingerprint": "fp_mock",
            "choices": [
                {
                    "index": i,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": plan.finish_reason,
                }
                for i in range(plan.n)
            ],
            "usage": plan.usage,
        }
    )
