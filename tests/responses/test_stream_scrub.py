"""The backend's key split across a Responses stream's deltas (frames the mock upstream never
sends: its native stream splits text by words), through the gateway's own event reader and key
scrub (``stream_events.scrubbed``); and chat chunks the mock never sends (a length limit,
logprobs, two calls) through the translation (``responses.events.ChatEvents``), every event
checked against the spec."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gateway.pipeline.responses.events import ChatEvents, sse
from gateway.pipeline.stream_events import scrubbed
from gateway.upstream.client import UpstreamClient
from gateway.upstream.sse import Event, events
from tests import spec

KEY = "sk-backend-key-0123456789"
WHERE = {"item_id": "msg_1", "output_index": 0, "content_index": 0}


def _frames(texts: list[str], arguments: list[str]) -> list[dict[str, Any]]:
    """A native stream: a message whose text is ``texts``, then a call with ``arguments``."""
    text, args = "".join(texts), "".join(arguments)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    message = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant",
               "content": []}
    call = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "c1",
            "name": "lookup", "arguments": ""}
    frames: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": 0, "item": message},
        {"type": "response.content_part.added", **WHERE, "part": part},
        *({"type": "response.output_text.delta", **WHERE, "delta": t, "logprobs": []}
          for t in texts),
        {"type": "response.output_text.done", **WHERE, "text": text, "logprobs": []},
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        *({"type": "response.function_call_arguments.delta", "item_id": "fc_1",
           "output_index": 1, "delta": a} for a in arguments),
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 1,
         "name": "lookup", "arguments": args},
    ]
    return [{**frame, "sequence_number": n} for n, frame in enumerate(frames)]


async def _bytes(frames: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield sse(frame)


def _scrubbed(frames: list[dict[str, Any]]) -> list[Event]:
    async def run() -> list[Event]:
        async with httpx.AsyncClient() as http:
            upstream = UpstreamClient(http, [KEY])
            return [e async for e in scrubbed(events(_bytes(frames)), upstream)]

    return asyncio.run(run())


def _of(out: list[Event], kind: str) -> list[dict[str, Any]]:
    parsed = [json.loads(e.data or "") for e in out]
    return [p for p in parsed if p["type"] == kind]


def test_a_key_split_across_text_deltas_is_scrubbed_whole() -> None:
    texts = ["my key is sk-back", "end-key-01", "23456789 and", " that is all"]
    out = _scrubbed(_frames(texts, ['{"q": "', "ok", '"}']))
    wire = b"".join(e.raw for e in out).decode()
    assert KEY not in wire and "sk-back" not in wire
    said = "my key is [redacted] and that is all"
    deltas = [d["delta"] for d in _of(out, "response.output_text.delta")]
    assert "".join(deltas) == said
    assert _of(out, "response.output_text.done")[0]["text"] == said
    for event in out:  # each keeps its SSE name
        assert event.raw.startswith(f"event: {json.loads(event.data or '')['type']}\n".encode())


def test_a_tail_that_only_looks_like_a_key_goes_out_before_its_done() -> None:
    """The held end is released as a delta of its own, before the text's ``.done``."""
    out = _scrubbed(_frames(["the prefix sk-b", "ut no key"], ['{"a": 1}']))
    kinds = [json.loads(e.data or "")["type"] for e in out]
    first_done = kinds.index("response.output_text.done")
    deltas = [d["delta"] for d in _of(out, "response.output_text.delta")]
    assert "".join(deltas) == "the prefix sk-but no key"
    assert kinds[first_done - 1] == "response.output_text.delta"


def test_a_key_split_across_argument_deltas_is_scrubbed_whole() -> None:
    out = _scrubbed(_frames(["fine"], ['{"token": "sk-backe', "nd-key-0123456789", '"}']))
    wire = b"".join(e.raw for e in out).decode()
    assert KEY not in wire
    deltas = [d["delta"] for d in _of(out, "response.function_call_arguments.delta")]
    assert json.loads("".join(deltas)) == {"token": "[redacted]"}
    done = _of(out, "response.function_call_arguments.done")[0]
    assert json.loads(done["arguments"]) == {"token": "[redacted]"}


def test_a_stream_cut_inside_a_held_tail_still_sends_the_tail() -> None:
    frames = _frames(["cut at sk-back"], [])[:3]  # no .done: the backend went away
    out = _scrubbed(frames)
    deltas = [d["delta"] for d in _of(out, "response.output_text.delta")]
    assert "".join(deltas) == "cut at sk-back"


SHELL = {"id": "resp_1", "object": "response", "created_at": 1, "model": "m", "output": [],
         "status": "in_progress", "error": None, "incomplete_details": None,
         "instructions": None, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True,
         "metadata": {}, "temperature": 1.0, "top_p": 1.0, "usage": None, "user": None}


def _chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, **more}
    return {"id": "c", "model": "mock-small", "choices": [choice]}


def test_a_length_limit_ends_incomplete_and_logprobs_carry_over() -> None:
    chat = ChatEvents(SHELL)
    token = {"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
             "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]}
    out = chat.chunk(_chunk({"role": "assistant", "content": "Hi"},
                            logprobs={"content": [token]}))
    out += chat.chunk(_chunk({"content": " there"}, "length"))
    out += chat.chunk({"id": "c", "choices": [],
                       "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}})
    out += chat.done()
    for event in out:
        spec.check_stream_event(event)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    last = out[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["usage"]["total_tokens"] == 4
    first = next(e for e in out if e["type"] == "response.output_text.delta")
    assert first["logprobs"][0]["token"] == "Hi"
    assert last["response"]["output"][0]["content"][0]["text"] == "Hi there"
    assert chat.so_far() is last["response"]


def test_two_calls_are_two_items_each_whole() -> None:
    chat = ChatEvents(SHELL)
    calls = [
        [{"index": 0, "id": "a", "function": {"name": "one", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": '{"x": 1}'}}],
        [{"index": 1, "id": "b", "function": {"name": "two", "arguments": "{}"}}],
    ]
    out = [e for c in calls for e in chat.chunk(_chunk({"tool_calls": c}))]
    out += chat.chunk(_chunk({}, "tool_calls"))
    out += chat.done()
    for event in out:
        spec.check_stream_event(event)
    final = out[-1]["response"]
    assert out[-1]["type"] == "response.completed"
    assert [(i["name"], i["call_id"], i["arguments"]) for i in final["output"]] == [
        ("one", "a", '{"x": 1}'), ("two", "b", "{}")
    ]
    done = [e for e in out if e["type"] == "response.output_item.done"]
    assert [e["output_index"] for e in done] == [0, 1]


def test_a_refusal_is_a_message_of_its_own_refusal_part() -> None:
    chat = ChatEvents(SHELL)
    out = chat.chunk(_chunk({"role": "assistant", "refusal": "I can't "}))
    out += chat.chunk(_chunk({"refusal": "help with that."}, "stop"))
    out += chat.done()
    for event in out:
        spec.check_stream_event(event)
    deltas = [e["delta"] for e in out if e["type"] == "response.refusal.delta"]
    assert "".join(deltas) == "I can't help with that."
    (done,) = [e for e in out if e["type"] == "response.refusal.done"]
    assert done["refusal"] == "I can't help with that."
    (message,) = out[-1]["response"]["output"]
    assert message["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
