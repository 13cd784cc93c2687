"""Small pure pieces: SSE framing, stream assembly, error paths, key formatting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.auth.keys import display, looks_like_key
from gateway.errors import InvalidRequest, UpstreamPassthrough
from gateway.pipeline.assemble import StreamAssembler
from gateway.pipeline.request import ChatRequest, param_path, validate
from gateway.upstream.sse import Event, events


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def parse(parts: list[bytes]) -> list[Event]:
    async def collect() -> list[Event]:
        return [event async for event in events(_chunks(parts))]

    return asyncio.run(collect())


def test_sse_events_survive_any_chunking_and_line_endings() -> None:
    stream = (
        b'data: {"a": 1}\n\nevent: error\ndata: {"error": {}}\r\n\r\n'
        b": keepalive\n\ndata: [DONE]\n\n"
    )
    whole = parse([stream])
    bytewise = parse([bytes([b]) for b in stream])
    assert [e.data for e in whole] == [e.data for e in bytewise]
    assert [e.data for e in whole] == ['{"a": 1}', '{"error": {}}', None, "[DONE]"]
    assert whole[1].event == "error"
    assert whole[-1].done
    assert whole[0].raw == b'data: {"a": 1}\n\n'


def test_sse_multiline_data_and_trailing_partial_event() -> None:
    (event, partial) = parse([b"data: one\ndata: two\n\n", b"data: cut"])
    assert event.data == "one\ntwo"
    assert partial.data == "cut"


def test_assembler_rebuilds_content_tool_calls_and_usage() -> None:
    assembler = StreamAssembler()
    head = {"id": "c1", "created": 1, "model": "m", "system_fingerprint": None}
    deltas = [
        {"index": 0, "delta": {"role": "assistant", "content": ""}},
        {"index": 0, "delta": {"content": "Hel"}},
        {
            "index": 1,
            "delta": {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q"'},
                    }
                ]
            },
        },
        {"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"},
        {
            "index": 1,
            "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
            "finish_reason": "tool_calls",
        },
    ]
    for delta in deltas:
        assembler.add({**head, "choices": [delta]})
    assert assembler.finished
    assembler.add({**head, "choices": [], "usage": {"total_tokens": 5}})
    body = assembler.body()
    assert body["choices"][0]["message"]["content"] == "Hello"
    call = body["choices"][1]["message"]["tool_calls"][0]
    assert call == {
        "id": "t1",
        "type": "function",
        "function": {"name": "look", "arguments": '{"q": 1}'},
    }
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "tool_calls"]
    assert body["usage"] == {"total_tokens": 5} and assembler.finished


def test_param_paths_name_the_field_as_clients_wrote_it() -> None:
    assert param_path(("messages", 2, "content", "str")) == "messages[2].content"
    with pytest.raises(InvalidRequest) as caught:
        validate(ChatRequest, {"model": "m", "messages": [{"role": "user", "content": 5}]})
    assert caught.value.param == "messages[0].content"


def test_upstream_passthrough_keeps_an_openai_body_and_wraps_anything_else() -> None:
    shaped = UpstreamPassthrough(422, b'{"error": {"message": "m", "type": "t"}}', {})
    assert shaped.body() == {"error": {"message": "m", "type": "t"}}
    assert shaped.headers() == {"x-should-retry": "false"}
    html = UpstreamPassthrough(404, b"<html>nope</html>", {})
    assert html.body()["error"]["code"] == "upstream_client_error"
    assert "x-should-retry" not in UpstreamPassthrough(429, b"", {}).headers()


def test_keys_are_shown_only_by_prefix_and_last_four() -> None:
    secret = "sk-gw-" + "a" * 38 + "WXYZ"
    assert display(secret) == "sk-gw-aaaa…WXYZ"
    assert looks_like_key(secret) and not looks_like_key("sk-other-" + "a" * 40)
