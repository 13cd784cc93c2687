"""A Responses request as what a route is sent: a chat completions body for a backend that
does not serve the Responses API (``chat_body``), or the Responses body itself, the earlier
turns of a conversation inlined when the backend cannot resolve ``previous_response_id``
(``native_body``). Pure functions over JSON values.
"""

from __future__ import annotations

from typing import Any

from gateway.pipeline.responses.request import unsupported
from gateway.records.shapes import chat_tool, response_messages

#: Responses fields that keep their name and meaning in a chat completion request
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user")


def items_of(body: dict[str, Any]) -> list[Any]:
    """A request's input as a list of items (a string input is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def chat_body(
    body: dict[str, Any],
    prior_messages: list[dict[str, Any]],
    messages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The chat completions request of a Responses request: its instructions, the earlier
    turns (``prior_messages``), then its own input (``messages``: the chat view of it, as the
    input rules left it; else made from the body)."""
    own = messages if messages is not None else response_messages(
        body.get("instructions"), body.get("input")
    )
    head = 1 if isinstance(body.get("instructions"), str) else 0
    chat: dict[str, Any] = {
        "model": body.get("model"),
        "messages": [*own[:head], *prior_messages, *own[head:]],
    }
    chat.update({k: body[k] for k in _SAME if body.get(k) is not None})
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = [chat_tool(t) for t in body["tools"]]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    text_format = (body.get("text") or {}).get("format")
    if isinstance(text_format, dict):
        chat["response_format"] = _response_format(text_format)
    return chat


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    raise unsupported("tool_choice", "only auto, none, required or one function is translated")


def _response_format(text_format: dict[str, Any]) -> dict[str, Any]:
    kind = text_format.get("type")
    if kind != "json_schema":
        return {"type": kind}
    schema = {k: text_format[k] for k in ("name", "schema", "strict", "description")
              if k in text_format}
    return {"type": "json_schema", "json_schema": schema}


def native_body(
    body: dict[str, Any], items: list[Any], prior_items: list[Any] | None
) -> dict[str, Any]:
    """The Responses body a native backend is sent: the input as the input rules left it;
    with ``prior_items`` (the backend cannot resolve the earlier response: another backend
    served it, or the gateway translated it) the earlier turns inlined before it."""
    sent = {**body, "input": items}
    if prior_items is not None:
        sent.pop("previous_response_id", None)
        sent["input"] = [*prior_items, *items]
    return sent


def items_of_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Chat messages (a record's redacted view) back as Responses items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("item"), dict):
            items.append(message["item"])
            continue
        role = message.get("role")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": _text(message.get("content"))})
            continue
        if message.get("content") is not None:
            items.append({"type": "message", "role": role,
                          "content": _parts(role, message["content"])})
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append({"type": "function_call", "call_id": call.get("id"),
                          "name": function.get("name"), "arguments": function.get("arguments")})
    return items


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))


def _parts(role: Any, content: Any) -> Any:
    kind = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        return content if role != "assistant" else [{"type": kind, "text": content}]
    parts = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": kind, "text": part.get("text")})
        elif isinstance(part, dict) and part.get("type") == "image_url":
            parts.append({"type": "input_image", "image_url": (part["image_url"] or {}).get("url")})
    return parts


def redacted_items(items: list[Any], messages: list[Any]) -> list[Any]:
    """The input items with the texts the input rules left in their chat messages (one
    message per item, in order): copies where a text changed."""
    out = []
    for item, message in zip(items, messages, strict=False):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(item, dict):
            out.append(item)
        elif _is_result(item) and isinstance(content, str):
            out.append({**item, "output": content} if content != item.get("output") else item)
        elif _is_result(item) and isinstance(content, list):
            output = item.get("output")
            parts = output if isinstance(output, list) else [output]
            texts = _texts_into(parts, content)
            out.append({**item, "output": texts if isinstance(output, list) else texts[0]})
        elif isinstance(item.get("content"), list) and isinstance(content, list):
            out.append({**item, "content": _texts_into(item["content"], content)})
        elif isinstance(item.get("content"), str) and isinstance(content, str):
            out.append({**item, "content": content} if content != item["content"] else item)
        else:
            out.append(item)
    return out + items[len(out):]


def _is_result(item: dict[str, Any]) -> bool:
    """A tool's result (any ``*_output`` item, or an ``mcp_call`` with its output): its text is
    in ``output``, as the chat view reads it (``records.shapes``)."""
    kind = item.get("type")
    return isinstance(kind, str) and (kind.endswith("_output") or kind == "mcp_call")


def redacted_prompt(prompt: Any, messages: list[Any]) -> Any:
    """A stored prompt with its variables' texts as the input rules left them (the view has
    one user message per text variable, after the items, in order)."""
    variables = prompt.get("variables") if isinstance(prompt, dict) else None
    if not isinstance(variables, dict) or not messages:
        return prompt
    texts = iter(m.get("content") if isinstance(m, dict) else None for m in messages)
    changed: dict[str, Any] = {}
    for name, value in variables.items():
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            changed[name] = value
            continue
        new = next(texts, text)
        new = new if isinstance(new, str) else text
        changed[name] = {**value, "text": new} if isinstance(value, dict) else new
    return {**prompt, "variables": changed}


def _texts_into(parts: Any, viewed: list[Any]) -> list[Any]:
    """An item's parts with the texts of their chat view's parts (as the rules left them)."""
    return [
        {**p, "text": c["text"]} if isinstance(c, dict) and "text" in c and isinstance(p, dict)
        else p
        for p, c in zip(parts if isinstance(parts, list) else [], viewed, strict=False)
    ]
