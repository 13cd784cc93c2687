"""The mock upstream's faults for the upstream fault suite, over real HTTP: a fault that fires N
times then answers, a status with headers, raw malformed HTTP, a chunked stream that breaks and
then says nothing, fixed-size stream pieces, and the server's keep-alive."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.mock import Fault
from tests.servers import Upstream
from tests.upstream.faults import mock

SCRIPT: dict[str, Any] = {
    "keep_alive_seconds": 0.3,
    "rules": [
        {"contains": "TWICE", "fault": {"status": 500, "times": 2}},
        {"contains": "RATE", "fault": {"status": 429, "headers": {"Retry-After": "7"}}},
        {"contains": "LONG-HEADER", "fault": {"malformed": "long_header"}},
        {"contains": "BAD-STATUS", "fault": {"malformed": "bad_status"}},
        {"contains": "BAD-CHUNK", "fault": {"malformed": "bad_chunk"}},
        {"contains": "BROKEN", "reply": "a b c d", "fault": {"broken_chunk_after": 2}},
        {"contains": "PIECES", "reply": "abcdefghij", "chunk_chars": 4},
    ],
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with mock(tmp_path_factory.mktemp("mock-faults"), SCRIPT) as served:
        yield served


def _body(text: str, stream: bool = False) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    return {"model": "mock-small", "messages": messages, "stream": stream}


def _raw(upstream: Upstream, text: str) -> bytes:
    """What the server puts on the socket for one request, as bytes (no HTTP parser)."""
    port = int(upstream.url.rsplit(":", 1)[1])
    payload = httpx.Request("POST", "http://x/", json=_body(text)).read()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _until_silent(sock: socket.socket) -> bytes:
    """What arrives until nothing more does within the socket's timeout (the connection stays
    open: a closed one would end the loop with b"")."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received
    raise AssertionError(f"the connection closed: {received[-200:]!r}")


def test_a_fault_fires_its_times_then_the_rule_answers(upstream: Upstream) -> None:
    url = f"{upstream.url}/v1/chat/completions"
    statuses = [httpx.post(url, json=_body("TWICE")).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_a_status_fault_carries_its_headers(upstream: Upstream) -> None:
    response = httpx.post(f"{upstream.url}/v1/chat/completions", json=_body("RATE"))
    assert (response.status_code, response.headers["retry-after"]) == (429, "7")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LONG-HEADER", b"x-filler: " + b"a" * 9000),
        ("BAD-STATUS", b"HTTP/1.1 2OO NOT-A-STATUS\r\n"),
        ("BAD-CHUNK", b"transfer-encoding: chunked\r\n\r\nzz\r\n"),
    ],
)
def test_malformed_http_is_written_raw(upstream: Upstream, text: str, expected: bytes) -> None:
    received = _raw(upstream, text)
    assert expected in received
    assert b"500 Internal Server Error" not in received  # the server added nothing of its own


def test_a_broken_chunk_mid_stream_then_silence(upstream: Upstream) -> None:
    port = int(upstream.url.rsplit(":", 1)[1])
    payload = httpx.Request("POST", "http://x/", json=_body("BROKEN", stream=True)).read()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=1.5) as sock:
        sock.sendall(head + payload)
        received = _until_silent(sock)
    assert b"zz\r\nnot a chunk\r\n" in received
    assert received.count(b'"content":"') == 2 + 1  # the role delta's, then two words


def test_a_stream_in_fixed_size_pieces(upstream: Upstream) -> None:
    with httpx.stream(
        "POST", f"{upstream.url}/v1/chat/completions", json=_body("PIECES", stream=True)
    ) as response:
        frames = [line for line in response.iter_lines() if '"content":"' in line]
    pieces = [line.split('"content":"')[1].split('"')[0] for line in frames]
    assert pieces == ["", "abcd", "efgh", "ij"]


def test_the_servers_keep_alive_closes_an_idle_connection(upstream: Upstream) -> None:
    port = int(upstream.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # the server closed the idle connection
        assert 0.2 < time.monotonic() - started < 2  # after the script's 0.3 s, not uvicorn's 5


def test_fault_endings_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="at most one"):
        Fault(malformed="bad_status", status=500)
    with pytest.raises(ValidationError, match="headers only apply"):
        Fault(headers={"retry-after": "1"})
