"""The key held back in every text of a stream's deltas (content, refusal, reasoning, a tool
call's arguments), and what an error event first in a stream is taken for: unit-level, the
process-level cases are in ``test_stream_frames.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.pipeline.stream_events import error_in, scrubbed
from gateway.upstream.client import UpstreamClient
from gateway.upstream.failures import (
    REFUSED_IN_STREAM,
    STATUS,
    StreamRefused,
    backend_failed,
    error_event_failure,
    retryable,
)
from gateway.upstream.sse import Event, parse_event

SECRET = "sk-backend-0123456789abcdef"


def _call(arguments: str, index: int = 0) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}


async def _events(deltas: list[tuple[dict[str, Any], str | None]]) -> AsyncIterator[Event]:
    for delta, finish in deltas:
        chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        yield parse_event(b"data: " + json.dumps(chunk).encode())
    yield parse_event(b"data: [DONE]")


def _merged(deltas: list[tuple[dict[str, Any], str | None]]) -> dict[str, str]:
    """Each text as a client merging the deltas sees it (by field; a call's by its index)."""

    async def go() -> dict[str, str]:
        client = UpstreamClient(None, [SECRET])  # type: ignore[arg-type]  # no request is sent
        texts: dict[str, str] = {}
        async for event in scrubbed(_events(deltas), client):
            if not event.data or event.done:
                continue
            assert SECRET not in event.data
            for choice in json.loads(event.data)["choices"]:
                delta = choice["delta"]
                for name in ("content", "refusal", "reasoning_content"):
                    texts[name] = texts.get(name, "") + (delta.get(name) or "")
                for call in delta.get("tool_calls") or []:
                    name = f"call{call['index']}"
                    texts[name] = texts.get(name, "") + call["function"]["arguments"]
        return {k: v for k, v in texts.items() if v}

    return asyncio.run(go())


@pytest.mark.parametrize("cut", [1, 5, len(SECRET) - 1])
def test_a_key_split_in_a_tool_calls_arguments_is_scrubbed(cut: int) -> None:
    deltas = [(_call(f'{{"k": "{SECRET[:cut]}'), None), (_call(f'{SECRET[cut:]}"}}'), None)]
    assert _merged([*deltas, ({}, "tool_calls")]) == {"call0": '{"k": "[redacted]"}'}


@pytest.mark.parametrize("name", ["refusal", "reasoning_content"])
def test_a_key_split_in_a_refusal_or_reasoning_is_scrubbed(name: str) -> None:
    deltas = [({name: f"say {SECRET[:4]}"}, None), ({name: f"{SECRET[4:]}."}, "stop")]
    assert _merged(deltas) == {name: "say [redacted]."}


def test_each_text_holds_its_own_end_and_the_finish_releases_them_all() -> None:
    """Content held while a tool call streams; each held end comes back in its own place."""
    deltas = [
        ({"content": "ask s"}, None),
        (_call('{"a": "s', 1), None),
        (_call("k-nothing", 1), None),
        ({}, "tool_calls"),
    ]
    assert _merged(deltas) == {"content": "ask s", "call1": '{"a": "sk-nothing'}


def test_what_is_held_when_the_stream_ends_unfinished_comes_before_done() -> None:
    assert _merged([(_call('{"a": "sk-back'), None)]) == {"call0": '{"a": "sk-back'}


def test_a_quote_inside_a_text_does_not_hide_a_held_end() -> None:
    deltas = [
        ({"content": 'he said "}" then sk-b'}, None),
        ({"content": "ackend-0123456789abcdef!"}, None),
    ]
    assert _merged([*deltas, ({}, "stop")]) == {"content": 'he said "}" then [redacted]!'}


CONTEXT = json.dumps({"error": {"message": "context too long", "type": "invalid_request_error"}})


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (CONTEXT, 400),
        ('{"error": {"message": "too long", "type": "BadRequestError", "code": 400}}', 400),
        ('{"error": {"message": "no such tool", "code": "422"}}', 422),
        ('{"error": {"message": "nope", "type": "some_error"}}', 502),
    ],
)
def test_an_error_event_first_that_is_no_server_error_is_a_refusal(data: str, status: int) -> None:
    error = error_event_failure("b", data)
    assert isinstance(error, StreamRefused) and error.status == status
    assert error.code == REFUSED_IN_STREAM
    assert not retryable(error) and not backend_failed(error)
    assert error.headers()["x-should-retry"] == "false"


def test_an_error_event_naming_a_429_stays_retryable() -> None:
    error = error_event_failure("b", '{"error": {"message": "busy", "code": 429}}')
    assert isinstance(error, StreamRefused) and error.status == 429
    assert retryable(error) and not backend_failed(error)
    assert "x-should-retry" not in error.headers()


@pytest.mark.parametrize(
    "data",
    [
        '{"error": {"message": "oops at 10.0.0.1", "type": "server_error"}}',
        '{"error": {"message": "oops at 10.0.0.1", "code": 503}}',
        '{"error": {"message": "oops at 10.0.0.1", "type": "overloaded_error"}}',
        '{"error": {"message": "oops at 10.0.0.1", "type": "InternalServerError"}}',
        '{"error": "oops at 10.0.0.1"}',  # no kind named: a crashed runner's
        '{"error": {"message": "oops at 10.0.0.1"}}',
        "oops at 10.0.0.1",  # not JSON
    ],
)
def test_an_error_event_saying_a_server_error_is_the_backends_failure(data: str) -> None:
    error = error_event_failure("b", data)
    assert error.code == STATUS and retryable(error) and backend_failed(error)
    assert "10.0.0.1" not in error.message and error.detail == "oops at 10.0.0.1"


def test_the_refusal_shown_is_scrubbed() -> None:
    error = error_event_failure("b", json.dumps({"error": {"message": f"bad key {SECRET}"}}))
    assert SECRET not in error.message


def test_a_long_server_error_event_is_read_whole_and_only_its_text_bounded() -> None:
    message = "oops at 10.0.0.1 " + "x" * 3000
    data = json.dumps({"error": {"message": message, "type": "server_error"}})
    error = error_event_failure("b", error_in(parse_event(b"data: " + data.encode())) or "")
    assert error.code == STATUS and backend_failed(error)
    assert error.detail and error.detail.startswith("oops at 10.0.0.1") and len(error.detail) < 2100


def _sent(chunks: list[dict[str, Any]], done: bool = True) -> list[dict[str, Any]]:
    """What ``scrubbed`` passes on for these chunks (each choice index 0), parsed."""

    async def events() -> AsyncIterator[Event]:
        for chunk in chunks:
            yield parse_event(b"data: " + json.dumps({"id": "c", **chunk}).encode())
        if done:
            yield parse_event(b"data: [DONE]")

    async def go() -> list[dict[str, Any]]:
        client = UpstreamClient(None, [SECRET])  # type: ignore[arg-type]  # no request is sent
        sent = [e.data async for e in scrubbed(events(), client) if e.data and not e.done]
        return [json.loads(data) for data in sent]

    return asyncio.run(go())


def _logprobs(tokens: list[str]) -> dict[str, Any]:
    entries = [{"token": t, "logprob": -1.0, "bytes": list(t.encode())} for t in tokens]
    return {"content": [{**e, "top_logprobs": [e]} for e in entries]}


@pytest.mark.parametrize("cut", [None, 6])  # the key whole in one frame, or split across two
def test_a_choice_whose_text_held_or_lost_a_key_loses_its_logprobs(cut: int | None) -> None:
    parts = [SECRET] if cut is None else [SECRET[:cut], SECRET[cut:]]
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": p}, "logprobs": _logprobs([*p])}]}
        for p in parts
    ]
    plain = {"index": 0, "delta": {"content": " ok"}, "logprobs": _logprobs([" ok"])}
    sent = _sent([*chunks, {"choices": [{**plain, "finish_reason": "stop"}]}])
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in sent) == "[redacted] ok"
    tokens = "".join(
        t["token"]
        for c in sent
        for t in ((c["choices"][0].get("logprobs") or {}).get("content") or [])
    )
    assert tokens == " ok"  # only the choice frames that held nothing keep theirs


def test_a_key_split_in_an_audio_transcript_is_scrubbed() -> None:
    audio = [{"id": "a", "transcript": f"it is {SECRET[:5]}"}, {"transcript": SECRET[5:]}]
    chunks = [{"choices": [{"index": 0, "delta": {"audio": a}}]} for a in audio]
    sent = _sent([*chunks, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])
    transcript = "".join(
        c["choices"][0]["delta"].get("audio", {}).get("transcript", "") for c in sent
    )
    assert transcript == "it is [redacted]" and SECRET not in json.dumps(sent)


def test_a_stream_ending_without_done_or_finish_keeps_its_held_text() -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in ("hello s", "k")]
    sent = _sent(chunks, done=False)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in sent) == "hello sk"
