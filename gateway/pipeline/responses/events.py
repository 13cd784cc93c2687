"""A chat completion stream as Responses API stream events, for a backend that speaks only chat
completions (``responses: translate``).

``ChatEvents`` reads the backend's chat chunks one at a time and says which Responses events
(``ResponseStreamEvent`` in OpenAI's spec) they are: ``response.created`` and
``response.in_progress`` first (the Response as known before any output: the gateway's
``shell``), a ``message`` item with one ``output_text`` part for the text
(``output_item.added``, ``content_part.added``, ``output_text.delta``…, ``output_text.done``,
``content_part.done``, ``output_item.done``), a ``function_call`` item per tool call (its
arguments as ``function_call_arguments.delta``… and ``.done``), and at ``[DONE]`` the whole
Response in ``response.completed`` (``response.incomplete`` for ``finish_reason`` ``length`` or
``content_filter``). The events are numbered here as the backend's would be; the stream's frames
number them again as they reach the client (``stream.py``). Only the first choice is read: a
Responses request asks for one answer.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

#: finish_reason → the Response's status and why it is incomplete
_ENDINGS: dict[str, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "function_call": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}
#: a Response's fields the spec never has null (the shell may not know them yet)
_NOT_NULL = ("usage", "user")
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def sse(event: dict[str, Any]) -> bytes:
    """One event as OpenAI sends it: its type as the SSE event name, its JSON as the data."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def spec_fields(response: dict[str, Any]) -> dict[str, Any]:
    """The Response without the fields the spec never has null, where they are null."""
    return {k: v for k, v in response.items() if v is not None or k not in _NOT_NULL}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def response_usage(usage: Any) -> dict[str, Any] | None:
    """A chat completion's usage as a Response's."""
    if not isinstance(usage, dict):
        return None
    given, made = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": given,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": made,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens") or given + made,
    }


def logprobs(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat choice's token logprobs as a Responses delta's."""
    given = choice.get("logprobs")
    content = given.get("content") if isinstance(given, dict) else None
    return [_logprob(t) for t in content or () if isinstance(t, dict)]


def _logprob(token: dict[str, Any]) -> dict[str, Any]:
    top = [_token(t) for t in token.get("top_logprobs") or () if isinstance(t, dict)]
    return {**_token(token), "top_logprobs": top}


def _token(token: dict[str, Any]) -> dict[str, Any]:
    given = token.get("bytes")
    return {
        "token": token.get("token", ""),
        "logprob": token.get("logprob", 0.0),
        "bytes": given if isinstance(given, list) else [],
    }


@dataclass(slots=True)
class _Item:
    """One output item being streamed: a message (its text) or a function call."""

    body: dict[str, Any]
    index: int
    part: str = "output_text"  # a message's one part: its text, or the model's refusal
    pieces: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def content(self, text: str | None = None) -> dict[str, Any]:
        """The message's part, with its text so far (or ``text``)."""
        said = self.text if text is None else text
        if self.part == "refusal":
            return {"type": "refusal", "refusal": said}
        return {"type": "output_text", "text": said, "annotations": [], "logprobs": self.logprobs}


class ChatEvents:
    """The Responses events a chat completion stream's chunks make (see the module's doc)."""

    def __init__(self, shell: dict[str, Any]) -> None:
        self._shell = shell
        self._seq = 0
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[Any, _Item] = {}  # a chat tool call's index → its item
        self._finish: str | None = None
        self._usage: Any = None
        self.model: Any = shell.get("model")
        self.started = False
        self.final: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return event

    def _response(self, status: str) -> dict[str, Any]:
        return {
            **spec_fields(self._shell),
            "object": "response",
            "status": status,
            "model": self.model,
            "output": [item.body for item in self._items],
        }

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The events one chat chunk makes (none for most of a finished stream's tail)."""
        out = self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        choices = [c for c in chunk.get("choices") or () if isinstance(c, dict)]
        for choice in choices:
            if choice.get("index", 0) == 0:
                out += self._choice(choice)
        return out

    def _start(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self.started:
            return []
        self.started = True
        if chunk.get("model"):
            self.model = chunk["model"]
        created = self._event("response.created", response=self._response("in_progress"))
        progress = self._event("response.in_progress", response=self._response("in_progress"))
        return [created, progress]

    def _choice(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        delta = choice.get("delta") or {}
        out: list[dict[str, Any]] = []
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._text("output_text", content, logprobs(choice))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out += self._text("refusal", refusal, [])
        for position, call in enumerate(delta.get("tool_calls") or ()):
            if isinstance(call, dict):
                out += self._call(call.get("index", position), call)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            out += self._call("function_call", {"function": legacy})
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
            out += self._close_all()
        return out

    def _text(self, part: str, text: str, tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A piece of the answer's text (``part`` output_text) or of its refusal."""
        out: list[dict[str, Any]] = []
        item = self._open
        if item is None or item.body["type"] != "message" or item.part != part:
            out += self._close()
            item = self._add(
                {"id": new_id("msg"), "type": "message", "status": "in_progress",
                 "role": "assistant", "content": []}
            )
            item.part = part
            out.append(self._added(item))
            out.append(self._part("response.content_part.added", item, item.content("")))
        item.pieces.append(text)
        item.logprobs.extend(tokens)
        where = self._where(item)
        if part == "refusal":
            out.append(self._event("response.refusal.delta", **where, delta=text))
        else:
            out.append(self._event("response.output_text.delta", **where, delta=text,
                                   logprobs=tokens))
        return out

    def _call(self, key: Any, call: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        function = call.get("function") or {}
        item = self._calls.get(key)
        if item is None:
            out += self._close()
            call_id = call.get("id") or new_id("call")
            item = self._calls[key] = self._add(
                {"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                 "arguments": "", "call_id": call_id, "name": function.get("name") or ""}
            )
            self._open = None  # a call stays open until its choice finishes (parallel calls
            out.append(self._added(item))  # may interleave their pieces)
        elif function.get("name"):
            item.body["name"] += function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.pieces.append(arguments)
            delta = {"item_id": item.body["id"], "output_index": item.index, "delta": arguments}
            out.append(self._event("response.function_call_arguments.delta", **delta))
        return out

    def _add(self, body: dict[str, Any]) -> _Item:
        item = _Item(body, len(self._items))
        self._items.append(item)
        self._open = item
        return item

    def _added(self, item: _Item) -> dict[str, Any]:
        body = json.loads(json.dumps(item.body))
        return self._event("response.output_item.added", output_index=item.index, item=body)

    def _where(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.body["id"], "output_index": item.index, "content_index": 0}

    def _part(self, kind: str, item: _Item, part: dict[str, Any]) -> dict[str, Any]:
        return self._event(kind, **self._where(item), part=part)

    def _close_all(self) -> list[dict[str, Any]]:
        """The choice finished: the open message, then every call, in order, is whole."""
        out = self._close()
        for item in self._items:
            out += self._done(item)
        return out

    def _close(self) -> list[dict[str, Any]]:
        """The open message is whole: its done events."""
        item, self._open = self._open, None
        return [] if item is None else self._done(item)

    def _done(self, item: _Item) -> list[dict[str, Any]]:
        """An item's done events (none if it was done already)."""
        if item.done:
            return []
        item.done = True
        item.body["status"] = "completed"
        if item.body["type"] == "function_call":
            arguments = item.body["arguments"] = item.text
            done = {"item_id": item.body["id"], "output_index": item.index,
                    "name": item.body["name"], "arguments": arguments}
            return [
                self._event("response.function_call_arguments.done", **done),
                self._event("response.output_item.done", output_index=item.index, item=item.body),
            ]
        part = item.content()
        item.body["content"] = [part]
        where = self._where(item)
        if item.part == "refusal":
            text_done = self._event("response.refusal.done", **where, refusal=item.text)
        else:
            text_done = self._event(
                "response.output_text.done", **where, text=item.text, logprobs=item.logprobs
            )
        return [
            text_done,
            self._event("response.content_part.done", **where, part=part),
            self._event("response.output_item.done", output_index=item.index, item=item.body),
        ]

    def done(self) -> list[dict[str, Any]]:
        """``[DONE]``: the whole Response, in the event that says how it ended."""
        out = self._close_all()
        status, reason = _ENDINGS.get(self._finish or "stop", ("completed", None))
        response = self._response(status)
        response["incomplete_details"] = {"reason": reason} if reason else None
        response["error"] = None
        self._put_usage(response)
        if status == "completed":
            response["completed_at"] = int(time.time())
        self.final = response
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, response=response))
        return out

    def so_far(self) -> dict[str, Any]:
        """The Response as far as the backend got (a stream cut short), for the record."""
        if self.final is not None:
            return self.final
        for item in self._items:
            if not item.done:
                item.body["status"] = "incomplete"
                if item.body["type"] == "function_call":
                    item.body["arguments"] = item.text
                else:
                    item.body["content"] = [item.content()]
        response = self._response("incomplete")
        self._put_usage(response)
        return response

    def _put_usage(self, response: dict[str, Any]) -> None:
        """The backend's usage, when it sent any (unknown is left out, never guessed)."""
        usage = response_usage(self._usage)
        if usage is not None:
            response["usage"] = usage
