"""POST /v1/responses for the mock upstream (and GET/DELETE of a stored response, its input
items): the Responses API answered by the same script and tool rule as chat completions.

A request becomes a chat request (instructions, the stored conversation of
`previous_response_id`, the input items, function tools, `text.format`), the chat handler
plans the answer, and the plan is rendered as a Response object or its stream of events.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gateway.mock.answer import respond_whole, stream, streams
from gateway.mock.asgi import BadRequest, Exchange, dumps, error_body, send_json
from gateway.mock.chat import ChatHandler, int_param, required
from gateway.mock.chat_plan import ChatPlan
from gateway.mock.logprobs import chat_entry
from gateway.mock.responses_items import chat_messages, input_items
from gateway.mock.responses_stream import response_frames

STORED_RESPONSES = 1000  # the store keeps the newest this many, as a bounded history
_LOGPROBS = "message.output_text.logprobs"
_FUNCTION_KEYS = ("name", "parameters", "strict")


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


@dataclass(frozen=True, slots=True)
class Stored:
    response: dict[str, Any]
    inputs: list[dict[str, Any]]  # this request's input items, with ids
    conversation: list[dict[str, Any]]  # every item so far, the output included


class ResponsesHandler:
    def __init__(self, chat: ChatHandler) -> None:
        self._chat = chat
        self._store: OrderedDict[str, Stored] = OrderedDict()

    async def create(self, ex: Exchange, body: Any) -> None:
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        model: str = required(body, "model", str)
        items = input_items(body.get("input"))
        prior = self._prior(body.get("previous_response_id"))
        plan = self._chat.plan(_chat_body(body, model, prior + items))
        response = _response(body, plan)
        if body.get("store") is not False:
            self._keep(Stored(response, items, prior + items + response["output"]))
        if streams(plan.stream, plan.fault):
            frames = response_frames(response, plan.reply.pieces)
            await stream(ex, frames, plan.fault, plan.token_delay)
        else:
            await respond_whole(ex, plan.fault, lambda: dumps(response))

    def _prior(self, previous: Any) -> list[dict[str, Any]]:
        if previous is None:
            return []
        stored = self._store.get(previous) if isinstance(previous, str) else None
        if stored is None:
            raise BadRequest(
                f"Previous response with id '{previous}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        return stored.conversation

    def _keep(self, stored: Stored) -> None:
        self._store[stored.response["id"]] = stored
        while len(self._store) > STORED_RESPONSES:
            self._store.popitem(last=False)

    async def lookup(self, ex: Exchange, rest: str) -> None:
        """GET /v1/responses/{id}, DELETE it, GET /v1/responses/{id}/input_items."""
        response_id, _, tail = rest.partition("/")
        stored = self._store.get(response_id)
        method = ex.scope["method"]
        if stored is None or tail not in ("", "input_items") or (tail and method != "GET"):
            message = f"No response found with id '{response_id}'."
            await send_json(ex.send, 404, error_body(message, "invalid_request_error"))
        elif method == "DELETE":
            del self._store[response_id]
            deleted = {"id": response_id, "object": "response", "deleted": True}
            await send_json(ex.send, 200, dumps(deleted))
        elif tail:
            await send_json(ex.send, 200, dumps(_item_list(stored.inputs, ex.scope)))
        else:
            await send_json(ex.send, 200, dumps(stored.response))


def _item_list(items: list[dict[str, Any]], scope: Any) -> dict[str, Any]:
    ascending = b"order=asc" in scope.get("query_string", b"")
    data = items if ascending else list(reversed(items))
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }


def _chat_body(body: dict[str, Any], model: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    messages = chat_messages(items)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    if not messages:
        message = "Missing required parameter: 'input'."
        raise BadRequest(message, "input", "missing_required_parameter")
    stream = body.get("stream") is True
    chat: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    tools = body.get("tools")
    if isinstance(tools, list):
        chat["tools"] = [
            {"type": "function", "function": {k: t[k] for k in _FUNCTION_KEYS if k in t}}
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function"
        ]
    if "tool_choice" in body:
        chat["tool_choice"] = body["tool_choice"]
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        chat["response_format"] = text["format"]
    limit = int_param(body, "max_output_tokens", 1)
    if limit is not None:
        chat["max_tokens"] = limit
    include = body.get("include")
    if isinstance(include, list) and _LOGPROBS in include:
        chat["logprobs"] = True
        chat["top_logprobs"] = int_param(body, "top_logprobs", 0, 20) or 0
    return chat


def _response(body: dict[str, Any], plan: ChatPlan) -> dict[str, Any]:
    """The whole Response object the plan stands for."""
    now = int(time.time())
    incomplete = plan.finish_reason in ("length", "content_filter")
    reason = "max_output_tokens" if plan.finish_reason == "length" else "content_filter"
    given = body.get("text")
    text: dict[str, Any] = given if isinstance(given, dict) else {}
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": now,
        "status": "incomplete" if incomplete else "completed",
        "completed_at": None if incomplete else now,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": reason} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": plan.model,
        "output": _output(plan),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": None,
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _usage(plan.usage),
        **({"user": body["user"]} if isinstance(body.get("user"), str) else {}),
    }


def _output(plan: ChatPlan) -> list[dict[str, Any]]:
    if plan.tool_calls:
        return [
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
            for call in plan.tool_calls
        ]
    top = plan.top_logprobs
    logprobs = [] if top is None else [chat_entry(p, top) for p in plan.reply.pieces]
    part = {"type": "output_text", "text": plan.reply.text, "annotations": [], "logprobs": logprobs}
    message = {"type": "message", "id": new_id("msg"), "status": "completed", "role": "assistant"}
    return [{**message, "content": [part]}]


def _usage(usage: dict[str, int]) -> dict[str, Any]:
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage["total_tokens"],
    }
