"""Prompt and answer text in the GenAI conventions' message shapes (``gen_ai.input.messages``,
``gen_ai.output.messages``): only ever built when the operator opted in (``telemetry.content``).

A message is ``{"role", "parts": [...]}``; a part is ``{"type": "text", "content"}``, a
``tool_call`` (id, name, arguments) or a ``tool_call_response`` (id, response). An output
message carries its ``finish_reason``. Bodies are chat-shaped (the record's chat view).
"""

from __future__ import annotations

from typing import Any


def input_messages(request: Any) -> list[dict[str, Any]]:
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return []
    return [_message(m) for m in messages if isinstance(m, dict)]


def output_messages(answer: Any) -> list[dict[str, Any]]:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list):
        return []
    found = []
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            continue
        message = _message(choice["message"])
        message["finish_reason"] = choice.get("finish_reason") or ""
        found.append(message)
    return found


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role") or "user")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append(
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": _text(message.get("content")),
            }
        )
    elif message.get("content") is not None:
        parts.append({"type": "text", "content": _text(message["content"])})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
    return {"role": role, "parts": parts}


def _text(content: Any) -> str:
    """A message's text: a string, or its text parts joined (images and audio left out)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text", "")) for p in texts)
    return "" if content is None else str(content)
