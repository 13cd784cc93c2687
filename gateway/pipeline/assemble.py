"""Rebuild a whole chat completion from its stream chunks, for the record."""

from __future__ import annotations

from typing import Any


def _merge_tool_calls(target: list[dict[str, Any]], deltas: list[Any]) -> None:
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", len(target))
        while len(target) <= index:
            target.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = target[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


class StreamAssembler:
    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
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
                self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        state = self.choices.setdefault(
            index,
            {
                "index": index,
                "message": {"role": "assistant", "content": None},
                "finish_reason": None,
            },
        )
        delta = choice.get("delta") or {}
        message = state["message"]
        if delta.get("role"):
            message["role"] = delta["role"]
        for key in ("content", "refusal"):
            if delta.get(key) is not None:
                message[key] = (message.get(key) or "") + delta[key]
        if delta.get("tool_calls"):
            _merge_tool_calls(message.setdefault("tool_calls", []), delta["tool_calls"])
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and logprobs.get("content"):
            state.setdefault("logprobs", {"content": []})["content"].extend(logprobs["content"])

    @property
    def finished(self) -> bool:
        return bool(self.choices) and all(c["finish_reason"] for c in self.choices.values())

    def body(self) -> dict[str, Any]:
        body = {
            **self.head,
            "object": "chat.completion",
            "choices": [self.choices[i] for i in sorted(self.choices)],
            "usage": self.usage,
        }
        if self.usage is None:  # unknown, never guessed (llama-cpp-python streams send none)
            body["usage_missing"] = "the backend sent no usage on this stream"
        return body
