"""A judged conversation's messages in the shapes the formats that carry tool calls read.

- OpenAI preference fine-tuning (``openai``): chat messages as the Chat Completions API takes
  them: an assistant turn's ``tool_calls`` (``id``, ``type``, ``function`` with ``name`` and
  ``arguments`` as a JSON string), a tool result as ``{"role": "tool", "tool_call_id",
  "content"}``; a legacy ``function_call`` and its ``function`` result as they were.
- TRL conversational (``trl``, ``kto``): the messages a Hugging Face chat template renders: an
  assistant turn's ``tool_calls`` with ``arguments`` as an object, a tool result as
  ``{"role": "tool", "name", "content"}`` (the name of the call it answers), beside a ``tools``
  column of the tools' JSON schemas.

Text is reduced to one string per message (``text_of``: non-text parts cannot be carried); an
assistant turn with neither text nor calls is left out (it would teach the model to say
nothing); names and other keys of a message are not carried.
"""

from __future__ import annotations

import json
from typing import Any, Literal

Dialect = Literal["openai", "trl"]
Message = dict[str, Any]


def text_of(content: Any) -> str:
    """A message's content as one string; non-text parts (images, audio) cannot be carried."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def tool_calls(message: Any) -> list[dict[str, Any]]:
    """A chat message's tool calls (a legacy ``function_call`` as one), as recorded."""
    if not isinstance(message, dict):
        return []
    listed = message.get("tool_calls")
    found = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        found.append({"type": "function", "function": legacy})
    return found


def has_tools(prompt: list[dict[str, Any]], answer_calls: list[dict[str, Any]]) -> bool:
    """Whether a conversation holds tool calls or tool results."""
    return bool(answer_calls) or any(
        tool_calls(m) or m.get("role") in ("tool", "function") for m in prompt
    )


def conversation(prompt: list[dict[str, Any]], dialect: Dialect) -> list[Message]:
    """The prompt's messages, with their tool calls and results, in the dialect's shape."""
    names: dict[str, str] = {}  # call id → tool name, for TRL's tool results
    shown: list[Message] = []
    for message in prompt:
        role = str(message.get("role", ""))
        calls = tool_calls(message)
        for call in calls:
            if call.get("id"):
                names[str(call["id"])] = _name(call)
        if role in ("tool", "function"):
            shown.append(_result(message, names, dialect))
            continue
        text = text_of(message.get("content"))
        if role == "assistant" and not text and not calls:
            continue
        if dialect == "openai" and isinstance(message.get("function_call"), dict):
            shown.append(_legacy_call(text, message["function_call"]))
            continue
        shown.append(assistant(text, calls, dialect) if calls else {"role": role, "content": text})
    return shown


def _legacy_call(text: str, function: dict[str, Any]) -> Message:
    """OpenAI's legacy shape, kept as it is: ``function_call`` (answered by a ``function``
    message, by name), which chat fine-tuning still reads."""
    turn: Message = {"role": "assistant"}
    if text:
        turn["content"] = text
    arguments = function.get("arguments")
    text_arguments = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    turn["function_call"] = {"name": str(function.get("name") or ""), "arguments": text_arguments}
    return turn


def assistant(text: str, calls: list[dict[str, Any]], dialect: Dialect) -> Message:
    """An assistant turn: its text, and its calls if it made any (then no empty text)."""
    if not calls:
        return {"role": "assistant", "content": text}
    turn: Message = {"role": "assistant"}
    if text:
        turn["content"] = text
    turn["tool_calls"] = [_call(c, dialect) for c in calls]
    return turn


def _name(call: dict[str, Any]) -> str:
    function = call.get("function")
    return str(function.get("name") or "") if isinstance(function, dict) else ""


def _call(call: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    assert isinstance(function, dict)
    arguments = function.get("arguments")
    if dialect == "openai":
        text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        shaped = {"type": "function", "function": {"name": _name(call), "arguments": text}}
        return {"id": call.get("id"), **shaped} if call.get("id") else shaped
    return {"type": "function", "function": {"name": _name(call), "arguments": _object(arguments)}}


def _object(arguments: Any) -> Any:
    """Arguments as the object a chat template renders (the JSON text parsed, if it is)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments if arguments is not None else {}


def _result(message: dict[str, Any], names: dict[str, str], dialect: Dialect) -> Message:
    content = text_of(message.get("content"))
    call_id = message.get("tool_call_id")
    if dialect == "openai":
        if isinstance(call_id, str):
            return {"role": "tool", "tool_call_id": call_id, "content": content}
        return {"role": "function", "name": str(message.get("name") or ""), "content": content}
    name = names.get(str(call_id)) if call_id is not None else message.get("name")
    return {"role": "tool", "name": name or "", "content": content}
