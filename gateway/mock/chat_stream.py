"""The chunks of a streamed chat answer (text, tool calls, logprobs), rendered up front."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from gateway.mock.answer import Frames
from gateway.mock.asgi import dumps, error_body
from gateway.mock.chat_plan import ChatPlan
from gateway.mock.logprobs import chat_entry
from gateway.mock.tools import argument_pieces

_ROLE_DELTA = '{"role":"assistant","content":""}'
_TOOL_ROLE_DELTA = '{"role":"assistant","content":null}'
_DONE = b"data: [DONE]\n\n"
_ERROR_FRAME = b"data: " + error_body("mock upstream error", "server_error", None, "mock_error")
_ERROR_FRAME += b"\n\n"


def completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


class _ChunkMaker:
    """Every chunk shares one envelope; building it once keeps each frame a string
    concatenation instead of a json.dumps of a nested dict."""

    def __init__(self, plan: ChatPlan) -> None:
        self._head = (
            f'data: {{"id":"{completion_id()}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{json.dumps(plan.model)},'
            '"system_fingerprint":"fp_mock","choices":['
        )
        self._tail = '],"usage":null}\n\n' if plan.include_usage else "]}\n\n"
        self._n = plan.n

    def step(
        self, delta: str, finish_reason: str | None = None, logprobs: str = "null"
    ) -> tuple[bytes, ...]:
        finish = "null" if finish_reason is None else f'"{finish_reason}"'
        return tuple(
            (
                f'{self._head}{{"index":{i},"delta":{delta},"logprobs":{logprobs},'
                f'"finish_reason":{finish}}}{self._tail}'
            ).encode()
            for i in range(self._n)
        )

    def usage(self, usage: dict[str, int]) -> bytes:
        return f'{self._head}],"usage":{dumps(usage).decode()}}}\n\n'.encode()


def chat_frames(plan: ChatPlan) -> Frames:
    chunks = _ChunkMaker(plan)
    role = _TOOL_ROLE_DELTA if plan.tool_calls else _ROLE_DELTA
    closing = list(chunks.step("{}", plan.finish_reason))
    if plan.include_usage:
        closing.append(chunks.usage(plan.usage))
    closing.append(_DONE)
    return Frames(
        opening=chunks.step(role),
        steps=tuple(_content_steps(plan, chunks)),
        closing=tuple(closing),
        error=_ERROR_FRAME,
        done=_DONE,
    )


def _content_steps(plan: ChatPlan, chunks: _ChunkMaker) -> list[tuple[bytes, ...]]:
    if not plan.tool_calls:
        top = plan.top_logprobs
        if top is None:
            return [chunks.step(delta) for delta in plan.reply.deltas]
        return [
            chunks.step(delta, None, _logprobs_json(piece, top))
            for piece, delta in zip(plan.reply.pieces, plan.reply.deltas, strict=True)
        ]
    steps = []
    for index, call in enumerate(plan.tool_calls):
        steps.append(chunks.step(json.dumps(_call_delta(plan, index, call.id, call.name, ""))))
        for piece in argument_pieces(call.arguments):
            steps.append(chunks.step(json.dumps(_call_delta(plan, index, None, None, piece))))
    return steps


def _call_delta(
    plan: ChatPlan, index: int, call_id: str | None, name: str | None, arguments: str
) -> dict[str, Any]:
    """A tool call's first delta (its id and name) or a piece of its arguments."""
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function = {"name": name, **function}
    if plan.legacy_function:
        return {"function_call": function}
    call: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        call = {"index": index, "id": call_id, "type": "function", "function": function}
    return {"tool_calls": [call]}


def _logprobs_json(piece: str, top: int) -> str:
    return dumps({"content": [chat_entry(piece, top)], "refusal": None}).decode()
