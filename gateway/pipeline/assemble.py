"""Rebuild a whole chat completion (or a legacy completion) from its stream chunks, for the
record.

Texts arrive a piece at a time: each is kept as a list of pieces and joined once, when the
body is built, so a long answer costs its length, not its length squared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_TEXTS = ("content", "refusal")


@dataclass(slots=True)
class _ToolCall:
    id: Any = None
    type: str = "function"
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        function = {"name": "".join(self.name), "arguments": "".join(self.arguments)}
        return {"id": self.id, "type": self.type, "function": function}


@dataclass(slots=True)
class _Choice:
    index: Any
    role: Any = "assistant"
    texts: dict[str, list[str]] = field(default_factory=dict)
    tool_calls: list[_ToolCall] | None = None
    finish_reason: Any = None
    logprobs: list[Any] | None = None

    def add(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("role"):
            self.role = delta["role"]
        for key in _TEXTS:
            if delta.get(key) is not None:
                self.texts.setdefault(key, []).append(delta[key])
        if delta.get("tool_calls"):
            self._merge_tool_calls(delta["tool_calls"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and logprobs.get("content"):
            if self.logprobs is None:
                self.logprobs = []
            self.logprobs.extend(logprobs["content"])

    def _merge_tool_calls(self, deltas: list[Any]) -> None:
        calls = self.tool_calls = self.tool_calls if self.tool_calls is not None else []
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            index = delta.get("index", len(calls))
            while len(calls) <= index:
                calls.append(_ToolCall())
            call = calls[index]
            if delta.get("id"):
                call.id = delta["id"]
            if delta.get("type"):
                call.type = delta["type"]
            function = delta.get("function") or {}
            call.name.append(function.get("name") or "")
            call.arguments.append(function.get("arguments") or "")

    def body(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": None}
        for key in _TEXTS:
            if key in self.texts:
                message[key] = "".join(self.texts[key])
        if self.tool_calls is not None:
            message["tool_calls"] = [call.body() for call in self.tool_calls]
        body = {"index": self.index, "message": message, "finish_reason": self.finish_reason}
        if self.logprobs is not None:
            body["logprobs"] = {"content": list(self.logprobs)}
        return body


class StreamAssembler:
    """A chat completion stream's chunks as one ``chat.completion``."""

    object = "chat.completion"

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self._choices: dict[Any, _Choice | _TextChoice] = {}
        self.usage: Any = None
        self.chunks = 0

    def add(self, chunk: dict[str, Any]) -> None:
        self.chunks += 1
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                index = choice.get("index", 0)
                state = self._choices.get(index)
                if state is None:
                    state = self._choices[index] = self._choice(index)
                state.add(choice)

    def _choice(self, index: Any) -> _Choice | _TextChoice:
        return _Choice(index)

    @property
    def finished(self) -> bool:
        return bool(self._choices) and all(c.finish_reason for c in self._choices.values())

    def body(self) -> dict[str, Any]:
        body = {
            **self.head,
            "object": self.object,
            "choices": [self._choices[i].body() for i in sorted(self._choices)],
            "usage": self.usage,
        }
        if self.usage is None:  # unknown, never guessed (llama-cpp-python streams send none)
            body["usage_missing"] = "the backend sent no usage on this stream"
        return body


#: the legacy logprobs' lists, each one entry per token
_LEGACY_LOGPROBS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


@dataclass(slots=True)
class _TextChoice:
    """A legacy completion choice: its text in ``choices[].text``, its logprobs as lists."""

    index: Any
    text: list[str] = field(default_factory=list)
    finish_reason: Any = None
    logprobs: dict[str, list[Any]] | None = None

    def add(self, choice: dict[str, Any]) -> None:
        if isinstance(choice.get("text"), str):
            self.text.append(choice["text"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            kept = self.logprobs = self.logprobs if self.logprobs is not None else {}
            for key in _LEGACY_LOGPROBS:
                if isinstance(logprobs.get(key), list):
                    kept.setdefault(key, []).extend(logprobs[key])

    def body(self) -> dict[str, Any]:
        logprobs = None if self.logprobs is None else {k: list(v) for k, v in self.logprobs.items()}
        return {
            "index": self.index,
            "text": "".join(self.text),
            "logprobs": logprobs,
            "finish_reason": self.finish_reason,
        }


class CompletionAssembler(StreamAssembler):
    """A legacy completion stream's ``text_completion`` chunks as one ``text_completion``."""

    object = "text_completion"

    def _choice(self, index: Any) -> _Choice | _TextChoice:
        return _TextChoice(index)
