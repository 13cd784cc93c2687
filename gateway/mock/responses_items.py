"""Responses input items: normalised (a string input is one user message; every item gets an
id), and read as the chat messages the mock's chat handler plans an answer from."""

from __future__ import annotations

import os
from typing import Any

from gateway.mock.asgi import BadRequest

_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's `input` as a list of items, each with an `id` (kept when given)."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadRequest(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            message = f"Invalid type for 'input[{index}]': expected an object."
            raise BadRequest(message, f"input[{index}]", "invalid_type")
        kind = item.get("type", "message")
        prefix = _ID_PREFIX.get(kind, "item")
        item_id = item.get("id") or f"{prefix}_{os.urandom(24).hex()}"
        items.append({"type": kind, **item, "id": item_id})
    return items


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text"))
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as chat messages: messages by role, calls as an assistant's
    tool_calls, call outputs as tool messages; other items (reasoning) are not read."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            role = "system" if role == "developer" else role
            messages.append({"role": role, "content": _text(item.get("content"))})
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments", "")}
            call = {"id": item.get("call_id"), "type": "function", "function": function}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(output)}
            )
    return messages
