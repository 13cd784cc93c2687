"""Every endpoint's record read as a chat completion: ``as_chat(endpoint, request, answer)``.

Redaction, review, the web page and the exports read chat bodies (``messages``, ``choices``);
a Responses or legacy completions exchange is turned into that shape here, in one place, so
they all read every endpoint alike. Evidence indexes of those endpoints' rules refer to this
view (the input rules run over ``message_texts(view["messages"])``, the output rules over the
view's choices), so what is redacted, reviewed or exported lines up with the decision.

- ``"responses"``: ``instructions`` become one ``system`` message, then ONE chat message per
  input item (a string input is one ``user`` message; every ``*_output`` item and an
  ``mcp_call``'s result a ``tool`` message), then one ``user`` message per string variable
  of ``prompt.variables``; the Response object's ``output_text``
  parts become one choice each, its ``function_call``, ``custom_tool_call`` (``input`` as
  the arguments) and ``mcp_call`` items the last choice's ``tool_calls``.
- ``"completions"``: one ``user`` message per prompt; ``choices[i].text`` becomes
  ``choices[i].message.content``.
- anything else (``"chat.completions"``, ``"embeddings"``): unchanged.

Pure functions over JSON values: a body that is not the shape expected is kept as it is.
"""

from __future__ import annotations

from typing import Any

#: the scalar request fields a view keeps beside its messages (none of them holds content)
_KEPT = (
    "model",
    "stream",
    "store",
    "previous_response_id",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "max_tokens",
    "n",
)
_TEXT_PARTS = ("input_text", "output_text", "text")
#: the endpoints whose records are read through a view (the others are chat's shape already)
VIEWED = frozenset({"responses", "completions"})


def as_chat(endpoint: str, request_body: Any, response_body: Any) -> tuple[Any, Any]:
    """The record's request and answer as chat completion bodies."""
    return request_view(endpoint, request_body), answer_view(endpoint, response_body)


def request_view(endpoint: str, body: Any) -> Any:
    """A request as a chat completion request (``messages``, chat-format ``tools``)."""
    if not isinstance(body, dict):
        return body
    if endpoint == "responses":
        view = _kept(body)
        view["messages"] = response_messages(body.get("instructions"), body.get("input"))
        view["messages"] += prompt_messages(body.get("prompt"))  # after the items' messages
        if isinstance(body.get("tools"), list):
            view["tools"] = [chat_tool(t) for t in body["tools"]]
        return view
    if endpoint == "completions":
        view = _kept(body)
        view["messages"] = [{"role": "user", "content": p} for p in _prompts(body.get("prompt"))]
        return view
    return body


def answer_view(endpoint: str, body: Any) -> Any:
    """An answer as a chat completion (``choices[].message``)."""
    if not isinstance(body, dict):
        return body
    if endpoint == "responses":
        return _response_answer(body)
    if endpoint == "completions":
        return _completion_answer(body)
    return body


def response_messages(instructions: Any, items: Any) -> list[dict[str, Any]]:
    """The chat messages of a Responses input: the instructions, then one per item."""
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str):
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        messages += [item_message(item) for item in items]
    return messages


def item_message(item: Any) -> dict[str, Any]:
    """One Responses input (or output) item as one chat message."""
    if not isinstance(item, dict):
        return {"role": "assistant", "content": None, "item": item}
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return {"role": str(item.get("role")), "content": _content(item.get("content"))}
    if kind == "function_call":
        call = {"name": item.get("name"), "arguments": item.get("arguments")}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": item.get("call_id"), "type": "function", "function": call}],
        }
    if kind == "custom_tool_call":
        call = {"name": item.get("name"), "arguments": item.get("input")}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": item.get("call_id"), "type": "function", "function": call}],
        }
    if isinstance(kind, str) and kind.endswith("_output"):  # every tool's result is a tool's
        content = _output(item.get("output"))
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": content}
    if kind == "mcp_call":  # a remote call with its result: the result, as a tool's
        content = _output(item.get("output"))
        return {"role": "tool", "tool_call_id": item.get("id"), "content": content}
    return {"role": "assistant", "content": None, "item": item}


def _output(output: Any) -> Any:
    """A tool result's output as chat content: its text, or its parts."""
    if output is None or isinstance(output, str):
        return output
    return _content(output if isinstance(output, list) else [output])


def prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    """A stored prompt's variables as the user's messages (what the client puts into the
    template is input like any other): a string, or an ``input_text`` part, each."""
    variables = prompt.get("variables") if isinstance(prompt, dict) else None
    messages: list[dict[str, Any]] = []
    for value in variables.values() if isinstance(variables, dict) else ():
        text = value.get("text") if isinstance(value, dict) else value
        if isinstance(text, str):
            messages.append({"role": "user", "content": text})
    return messages


def chat_tool(tool: Any) -> Any:
    """A Responses function tool in chat's format; a built-in tool is kept as it is."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _kept(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in _KEPT if k in body}


def _content(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [_part(part) for part in content]


def _part(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        image = {"url": part.get("image_url") or part.get("file_id")}
        if "detail" in part:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    return part


def _prompts(prompt: Any) -> list[Any]:
    """A legacy prompt: a string, a list of strings, of token ids, or of token id lists."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, str | list) for p in prompt):
        return [p if isinstance(p, str) else None for p in prompt]
    if isinstance(prompt, str):
        return [prompt]
    return [None] if prompt is not None else []


def _response_answer(response: dict[str, Any]) -> dict[str, Any]:
    texts, calls, refusals = _output_parts(response.get("output"))
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": t} for t in texts]
    if (calls or refusals) and not messages:
        messages.append({"role": "assistant", "content": None})
    if calls:
        messages[-1]["tool_calls"] = calls
    if refusals:
        messages[-1]["refusal"] = "\n".join(refusals)
    finish = _finish_reason(response, bool(calls))
    view: dict[str, Any] = {"id": response.get("id"), "model": response.get("model")}
    view["choices"] = [
        {"index": i, "message": m, "finish_reason": finish} for i, m in enumerate(messages)
    ]
    usage = response.get("usage")
    if isinstance(usage, dict):
        view["usage"] = {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }
    return view


def _output_parts(output: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """A Response's output: its output_text parts, its calls (chat's format), its refusals."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    refusals: list[str] = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") in ("function_call", "custom_tool_call"):
            calls.append(item_message(item)["tool_calls"][0])
        elif item.get("type") == "mcp_call":  # judged like any call (the backend ran it)
            call = {"name": item.get("name"), "arguments": item.get("arguments")}
            calls.append({"id": item.get("id"), "type": "function", "function": call})
        elif item.get("type") != "message" or not isinstance(item.get("content"), list):
            continue
        for part in item.get("content") or ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "output_text":
                texts.append(str(part.get("text") or ""))
            elif kind == "refusal":
                refusals.append(str(part.get("refusal") or ""))
    return texts, calls, refusals


def _finish_reason(response: dict[str, Any], called: bool) -> str:
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if response.get("status") == "incomplete" or reason is not None:
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if called else "stop"


def _completion_answer(completion: dict[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices")
    if not isinstance(choices, list):
        return completion
    view = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            view.append(choice)
            continue
        kept = {k: v for k, v in choice.items() if k != "text"}
        kept.setdefault("index", index)
        kept["message"] = {"role": "assistant", "content": choice.get("text")}
        view.append(kept)
    return {**completion, "choices": view}
