"""Streams that break after the first byte: in-band errors, honest records, closed upstreams."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest

from tests.servers import Gateway, Upstream


def stream(sdk: openai.OpenAI, text: str) -> tuple[list[str], str, Exception | None]:
    """Stream through the SDK; return the text pieces, the request id and any error raised."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="test-small", stream=True, messages=[{"role": "user", "content": text}]
    )
    pieces: list[str] = []
    try:
        for chunk in raw.parse():
            pieces.extend(c.delta.content or "" for c in chunk.choices)
    except (openai.APIError, httpx.HTTPError) as exc:
        return pieces, raw.headers["x-request-id"], exc
    return pieces, raw.headers["x-request-id"], None


@pytest.mark.parametrize(
    ("trigger", "status", "error_type"),
    [
        ("FAULT-DROP", "incomplete", "upstream_connection_error"),
        ("FAULT-ERRFRAME", "upstream_error", "upstream_stream_error"),
        ("FAULT-MALFORMED", "upstream_error", "upstream_malformed_chunk"),
    ],
)
def test_a_broken_stream_ends_with_an_error_and_a_partial_record(
    gateway: Gateway, plain: openai.OpenAI, trigger: str, status: str, error_type: str
) -> None:
    pieces, request_id, error = stream(plain, trigger)
    assert isinstance(error, openai.APIError), error
    assert pieces, "some content arrived before the fault"
    record = gateway.record(request_id)
    assert (record["status"], record["error_type"]) == (status, error_type)
    assert record["response_body"]["choices"][0]["message"]["content"] == "".join(pieces)
    assert record["total_tokens"] is None  # an interrupted stream never gets its usage


def test_client_disconnect_mid_stream_closes_upstream_and_is_recorded(
    gateway: Gateway, upstream: Upstream
) -> None:
    body = {
        "model": "test-small",
        "stream": True,
        "messages": [{"role": "user", "content": "LONG-STREAM please"}],
    }
    headers = {"authorization": f"Bearer {gateway.keys['plain-context']}"}
    received: list[str] = []
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST", f"{gateway.v1}/chat/completions", json=body, headers=headers
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                received.extend(c["delta"].get("content") or "" for c in chunk["choices"])
            if len(received) >= 4:
                break
    started = time.monotonic()
    seen = upstream.seen(request_id, outcome="client_disconnected")
    assert seen["chunks_sent"] < 30, "the upstream stopped generating early"
    assert time.monotonic() - started < 5
    record = gateway.record(request_id)
    assert record["status"] == "client_disconnected"
    content = record["response_body"]["choices"][0]["message"]["content"]
    assert content.startswith("".join(received))
    assert len(content.split()) < 30


def test_client_leaving_before_a_non_streaming_answer_cancels_the_upstream_call(
    gateway: Gateway, upstream: Upstream
) -> None:
    body = {"model": "test-small", "messages": [{"role": "user", "content": "SLOW-FIRST"}]}
    headers = {"authorization": f"Bearer {gateway.key}"}
    before = {e["request_id"] for e in upstream.requests()}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.v1}/chat/completions", json=body, headers=headers, timeout=0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = gateway.admin("/exchanges", status="client_disconnected", limit=50).json()["data"]
        fresh = [
            r
            for r in rows
            if r["id"] not in before and r["requested_model"] == "test-small" and not r["stream"]
        ]
        if fresh:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no client_disconnected record")
    record = gateway.record(fresh[0]["id"])
    assert record["error_type"] == "client_disconnected"
    assert record["request_body"] == body
    seen = upstream.seen(record["id"])
    assert seen["outcome"] == "client_disconnected"


def test_a_client_that_leaves_mid_upload_is_recorded_as_gone_not_as_a_fault(
    gateway: Gateway,
) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    marker = f"upload-{time.monotonic_ns()}"
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(
            (
                "POST /v1/chat/completions HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {gateway.key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 5000\r\n"
                f"X-Test-Marker: {marker}\r\n\r\n"
                '{"model": "test-small", "messages": ['
            ).encode()
        )
        time.sleep(0.3)  # the gateway is reading the body when the client goes
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = gateway.admin("/exchanges", status="client_disconnected", limit=100).json()["data"]
        gone = [
            r
            for r in rows
            if r["error_type"] == "client_disconnected" and r["http_status"] == 499
        ]
        if any(gateway.record(r["id"])["request_body"] is None for r in gone):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no client_disconnected record for the aborted upload")
    faults = gateway.admin("/exchanges", status="gateway_error", limit=100).json()["data"]
    assert not [r for r in faults if r["error_type"] == "ClientDisconnect"]
