"""Clients that trickle: headers a byte at a time are cut at ``server.header_timeout`` with a
408; a body a byte at a time gets 408 ``request_timeout`` at ``server.body_timeout``, on
record; many such connections at once are all closed within the bound."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.records.fixtures import serve_on
from tests.servers import Gateway, Upstream

BOUND = 1.0


@pytest.fixture(scope="module")
def gateway(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("slow")
    url = f"sqlite+aiosqlite:///{folder / 'g.db'}"
    with serve_on(
        upstream, url, folder, server={"header_timeout": BOUND, "body_timeout": BOUND}
    ) as served:
        yield served


def _connect(gateway: Gateway) -> socket.socket:
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _trickle(sock: socket.socket, data: bytes, every: float = 0.2) -> tuple[bytes, float]:
    """Send ``data`` a byte at a time until the server answers or closes: what it answered
    and how long the connection stayed open. What the server sent is read before each next
    byte goes out (a byte sent to a closed socket is answered with a reset)."""
    started = time.monotonic()
    sock.setblocking(False)
    received = b""
    for byte in data:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            chunk = None
        except OSError:
            break
        if chunk is not None:
            received += chunk
            break  # an answer, or the server closed: stop sending
        try:
            sock.send(bytes([byte]))
        except OSError:
            break
        time.sleep(every)
    sock.settimeout(5)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except OSError:
        pass
    return received, time.monotonic() - started


HEADERS = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"x-pad: " + b"a" * 200


def test_headers_trickled_a_byte_at_a_time_are_cut_with_a_408(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        answer, open_for = _trickle(sock, HEADERS)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_timeout"
    assert BOUND * 0.8 < open_for < BOUND + 2


def test_a_body_trickled_a_byte_at_a_time_is_a_recorded_408(gateway: Gateway) -> None:
    body = json.dumps(
        {"model": "test-small", "messages": [{"role": "user", "content": "Hello " * 20}]}
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"authorization: Bearer {gateway.key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    with _connect(gateway) as sock:
        sock.sendall(head)
        answer, open_for = _trickle(sock, body)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"connection: close" in answer.lower()
    headers, payload = answer.split(b"\r\n\r\n", 1)
    assert json.loads(payload)["error"]["code"] == "request_timeout"
    assert open_for < BOUND + 2
    request_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in headers.split(b"\r\n")
        if line.lower().startswith(b"x-request-id:")
    )
    record = gateway.record(request_id)
    assert (record["status"], record["http_status"], record["error_type"]) == (
        "rejected",
        408,
        "request_timeout",
    )


def test_a_hundred_trickling_connections_are_all_closed_within_the_bound(
    gateway: Gateway,
) -> None:
    results: list[float] = []

    def one() -> None:
        with _connect(gateway) as sock:
            answer, open_for = _trickle(sock, HEADERS, every=0.5)
            if answer.startswith(b"HTTP/1.1 408 "):
                results.append(open_for)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 100
    assert max(results) < BOUND + 3
