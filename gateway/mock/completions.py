"""POST /v1/completions (the legacy API) for the mock upstream: each prompt answered as the
chat handler answers one user message, in `text_completion` objects and stream chunks."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from gateway.mock.answer import Frames, respond_whole, stream, streams
from gateway.mock.asgi import BadRequest, Exchange, dumps, error_body
from gateway.mock.chat import ChatHandler, int_param, required
from gateway.mock.chat_plan import ChatPlan
from gateway.mock.logprobs import legacy_logprobs

_DONE = b"data: [DONE]\n\n"
_ERROR_FRAME = b"data: " + error_body("mock upstream error", "server_error", None, "mock_error")
_ERROR_FRAME += b"\n\n"


@dataclass(frozen=True, slots=True)
class _Choice:
    index: int
    prefix: str  # the prompt, when `echo` asks for it back
    plan: ChatPlan


class CompletionsHandler:
    def __init__(self, chat: ChatHandler) -> None:
        self._chat = chat

    async def create(self, ex: Exchange, body: Any) -> None:
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        model: str = required(body, "model", str)
        n = int_param(body, "n", 1) or 1
        top = int_param(body, "logprobs", 0, 5)
        plans = [self._chat.plan(_chat_body(body, model, p)) for p in _prompts(body)]
        echo = body.get("echo") is True
        choices = [
            _Choice(i * n + j, prompt if echo else "", plan)
            for i, (prompt, plan) in enumerate(zip(_prompts(body), plans, strict=True))
            for j in range(n)
        ]
        first = plans[0]
        usage = _usage(plans, n)
        answer = _Answer(model, choices, top, usage)
        if streams(first.stream, first.fault):
            options = body.get("stream_options")
            with_usage = isinstance(options, dict) and options.get("include_usage") is True
            await stream(ex, answer.frames(with_usage), first.fault, first.token_delay)
        else:
            await respond_whole(ex, first.fault, answer.whole)


def _prompts(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    message = "'prompt' must be a string or a non-empty list of strings."
    code = "invalid_type" if prompt is not None else "missing_required_parameter"
    raise BadRequest(message, "prompt", code)


def _chat_body(body: dict[str, Any], model: str, prompt: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt}]
    chat: dict[str, Any] = {"model": model, "messages": messages}
    chat["stream"] = body.get("stream") is True
    if body.get("max_tokens") is not None:
        chat["max_tokens"] = body["max_tokens"]
    return chat


def _usage(plans: list[ChatPlan], n: int) -> dict[str, int]:
    prompt = sum(p.usage["prompt_tokens"] for p in plans)
    completion = sum(p.usage["completion_tokens"] for p in plans) * n
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class _Answer:
    def __init__(
        self, model: str, choices: list[_Choice], top: int | None, usage: dict[str, int]
    ) -> None:
        self._envelope = {
            "id": "cmpl-" + os.urandom(12).hex(),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_mock",
        }
        self._choices = choices
        self._top = top
        self._usage = usage

    def _logprobs(self, tokens: list[str], offset: int) -> Any:
        return None if self._top is None else legacy_logprobs(tokens, self._top, offset)

    def whole(self) -> bytes:
        choices = [
            {
                "text": c.prefix + c.plan.reply.text,
                "index": c.index,
                "logprobs": self._logprobs(list(c.plan.reply.pieces), len(c.prefix)),
                "finish_reason": c.plan.finish_reason,
            }
            for c in self._choices
        ]
        return dumps({**self._envelope, "choices": choices, "usage": self._usage})

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = json.dumps({**self._envelope, "choices": choices, **extra})
        return b"data: " + chunk.encode() + b"\n\n"

    def _piece(self, choice: _Choice, text: str, offset: int) -> dict[str, Any]:
        logprobs = self._logprobs([text], offset) if text else None
        return {"text": text, "index": choice.index, "logprobs": logprobs, "finish_reason": None}

    def frames(self, with_usage: bool) -> Frames:
        """Each choice's pieces side by side, one chunk a piece; then each finish."""
        opening = tuple(
            self._chunk([self._piece(c, c.prefix, 0)]) for c in self._choices if c.prefix
        )
        steps = []
        longest = max(len(c.plan.reply.pieces) for c in self._choices)
        for k in range(longest):
            step = []
            for c in self._choices:
                pieces = c.plan.reply.pieces
                if k < len(pieces):
                    offset = len(c.prefix) + sum(len(p) for p in pieces[:k])
                    step.append(self._chunk([self._piece(c, pieces[k], offset)]))
            steps.append(tuple(step))
        closing = [
            self._chunk([{**self._piece(c, "", 0), "finish_reason": c.plan.finish_reason}])
            for c in self._choices
        ]
        if with_usage:
            closing.append(self._chunk([], usage=self._usage))
        closing.append(_DONE)
        return Frames(opening, tuple(steps), tuple(closing), _ERROR_FRAME, _DONE)
