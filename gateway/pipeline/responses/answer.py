"""A Response object: the gateway's own, made from a chat completion (``response_of``, on
the translate path and for its streams), and a Response with the output rules' changes put
back into it (``apply_view``: the rules judge the record's chat view, ``records.shapes``).
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from gateway.pipeline.responses.request import CALLS, ResponsesRequest

_FINISHED = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def shell_of(body: dict[str, Any], request: ResponsesRequest) -> dict[str, Any]:
    """The Response's fields known before any output: what the request asked for, echoed."""
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "store": request.stored,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": [_echoed_tool(t) for t in body.get("tools") or ()],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": None,
        "metadata": request.metadata or {},
        **({"user": request.user} if request.user is not None else {}),
    }


def _echoed_tool(tool: Any) -> Any:
    """A declared tool as a Response echoes it (a function tool's ``strict`` defaults on)."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"parameters": None, **tool, "strict": tool.get("strict", True)}
    return tool


def response_of(chat_completion: dict[str, Any], shell: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion (its first choice) as a Response: one message item with the
    text, a function_call item per tool call, the status from its finish reason."""
    choices = chat_completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message")
    response = {**shell, "output": output_of(message if isinstance(message, dict) else {})}
    if chat_completion.get("model"):
        response["model"] = chat_completion["model"]
    reason = _FINISHED.get(str(choice.get("finish_reason")))
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = usage_of(chat_completion.get("usage"))
    return response


def output_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat message's text, refusal and tool calls as Response output items."""
    parts: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str):
        parts.append(text_part(message["content"]))
    elif isinstance(message.get("refusal"), str):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    output = [message_item(parts)] if parts else []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {} if isinstance(call, dict) else {}
        output.append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") if isinstance(call, dict) else None,
                "name": function.get("name"),
                "arguments": function.get("arguments") or "",
                "status": "completed",
            }
        )
    return output


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": "completed",
        "role": "assistant",
        "content": parts,
    }


def usage_of(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": usage.get("prompt_tokens") or 0,
        "input_tokens_details": {
            "cached_tokens": prompt.get("cached_tokens") or 0,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.get("completion_tokens") or 0,
        "output_tokens_details": {"reasoning_tokens": completion.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or 0,
    }


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A Response's usage in chat's terms (what the record and the quota count)."""
    if not isinstance(usage, dict):
        return None
    return {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
        "total_tokens": usage.get("total_tokens"),
    }


def apply_view(response: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``response`` with what the output stage left in its chat view (texts
    redacted or refused, calls taken out) put back: the k-th output_text is the view's k-th
    choice, a function_call stays only if its call is still in the view."""
    changed = copy.deepcopy(response)
    choices = [c for c in view.get("choices") or () if isinstance(c, dict)]
    texts = [(c.get("message") or {}).get("content") for c in choices]
    kept = {call.get("id") for c in choices for call in (c.get("message") or {}).get(
        "tool_calls") or ()}
    output, k = [], 0
    for item in changed.get("output") or ():
        if item.get("type") in CALLS and item.get(CALLS[item["type"]]) not in kept:
            continue
        for part in item.get("content") or () if item.get("type") == "message" else ():
            if part.get("type") == "output_text" and k < len(texts):
                part["text"], part["logprobs"], k = texts[k] or "", [], k + 1
        output.append(item)
    extra = [t for t in texts[k:] if isinstance(t, str)]  # a refusal where only calls were
    output += [message_item([text_part(t)]) for t in extra]
    changed["output"] = output
    if any(c.get("finish_reason") == "content_filter" for c in choices):
        changed["status"] = "incomplete"
        changed["incomplete_details"] = {"reason": "content_filter"}
    return changed
