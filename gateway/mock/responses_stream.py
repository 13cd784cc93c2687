"""A Response as its stream of typed events (`ResponseStreamEvent` in OpenAI's spec), rendered
up front from the whole Response: created, in_progress, each output item added, its text
deltas or argument deltas, done events, and `response.completed` (or `.incomplete`)."""

from __future__ import annotations

import json
from typing import Any

from gateway.mock.answer import Frames
from gateway.mock.logprobs import chat_entry
from gateway.mock.tools import argument_pieces


class _Events:
    """Numbers events in order and renders each as an SSE frame."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode()


def response_frames(response: dict[str, Any], pieces: tuple[str, ...]) -> Frames:
    """The events of ``response``, its text sent in ``pieces`` (the script's, so a rule's
    `chunk_chars` cuts Responses deltas as it cuts chat's)."""
    event = _Events()
    shell = {k: v for k, v in response.items() if k != "usage"}  # usage: only when done
    shell.update(status="in_progress", output=[])
    shell["completed_at"] = shell["incomplete_details"] = None
    opening = [
        event("response.created", response=shell),
        event("response.in_progress", response=shell),
    ]
    steps: list[tuple[bytes, ...]] = []
    closing: list[bytes] = []
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            opening += _message_opening(event, index, item)
            steps += [(delta,) for delta in _text_deltas(event, index, item, pieces)]
            closing += _message_closing(event, index, item)
        else:
            steps += [(frame,) for frame in _call_events(event, index, item)]
    terminal = "response.completed" if response["status"] == "completed" else "response.incomplete"
    closing.append(event(terminal, response=response))
    error = event("error", code="server_error", message="mock upstream error", param=None)
    return Frames(tuple(opening), tuple(steps), tuple(closing), error, b"")


def _message_opening(event: _Events, index: int, item: dict[str, Any]) -> list[bytes]:
    added = {**item, "status": "in_progress", "content": []}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
    return [
        event("response.output_item.added", output_index=index, item=added),
        event("response.content_part.added", **ids, part=part),
    ]


def _text_deltas(
    event: _Events, index: int, item: dict[str, Any], pieces: tuple[str, ...]
) -> list[bytes]:
    part = item["content"][0]
    top = len(part["logprobs"][0]["top_logprobs"]) if part["logprobs"] else None
    ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
    return [
        event(
            "response.output_text.delta",
            **ids,
            delta=piece,
            logprobs=[] if top is None else [chat_entry(piece, top)],
        )
        for piece in pieces
    ]


def _message_closing(event: _Events, index: int, item: dict[str, Any]) -> list[bytes]:
    part = item["content"][0]
    ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
    return [
        event("response.output_text.done", **ids, text=part["text"], logprobs=part["logprobs"]),
        event("response.content_part.done", **ids, part=part),
        event("response.output_item.done", output_index=index, item=item),
    ]


def _call_events(event: _Events, index: int, item: dict[str, Any]) -> list[bytes]:
    added = {**item, "status": "in_progress", "arguments": ""}
    ids = {"item_id": item["id"], "output_index": index}
    frames = [event("response.output_item.added", output_index=index, item=added)]
    frames += [
        event("response.function_call_arguments.delta", **ids, delta=piece)
        for piece in argument_pieces(item["arguments"])
    ]
    frames.append(
        event(
            "response.function_call_arguments.done",
            **ids,
            name=item["name"],
            arguments=item["arguments"],
        )
    )
    frames.append(event("response.output_item.done", output_index=index, item=item))
    return frames
