"""Minimal ASGI plumbing for the mock upstream: types, JSON responses, errors.

Kept framework-free on purpose: the mock sits under every benchmark, so each
request should cost a few dict lookups and one json.dumps, not a router.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

Outcome = Literal["completed", "client_disconnected", "fault"]

JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
)


@runtime_checkable
class _Transport(Protocol):
    """Duck-typed, because uvloop's transports do not subclass asyncio's."""

    def close(self) -> None: ...

    def is_closing(self) -> bool: ...

    def write(self, data: bytes) -> None: ...


class RequestRecord(TypedDict):
    request_id: str | None  # the gateway's id, from x-situate-request-id or x-request-id
    headers: dict[str, str]  # every request header but authorization (recorded apart)
    path: str
    model: str | None
    stream: bool
    authorization: str | None
    body: object
    outcome: Outcome
    chunks_sent: int


class MockConnectionDrop(Exception):
    """Raised to make the server abort a response mid-body (a scripted fault)."""


class BadRequest(Exception):
    """A client error to report as a 400 in OpenAI's error shape."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(slots=True)
class Exchange:
    """One HTTP request in flight, plus the log record describing it."""

    scope: Scope
    receive: Receive
    send: Send
    record: RequestRecord


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


async def send_json(
    send: Send, status: int, body: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    headers: Headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A response that need not be JSON (a scripted plain-text or HTML error, or none)."""
    headers: Headers = [(b"content-length", str(len(body)).encode()), *extra]
    if body:
        headers.insert(0, (b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def request_headers(scope: Scope) -> dict[str, str]:
    return {
        bytes(key).decode("latin-1"): bytes(value).decode("latin-1")
        for key, value in scope["headers"]
        if key != b"authorization"
    }


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left before sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def run_watched(receive: Receive, work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work` until it finishes or the client disconnects; True if it disconnected.

    The server only tells us about a vanished client through `receive`, so a
    listener must run alongside the sender; cancelling the sender on disconnect
    is what lets the request log prove that upstream streams really stop.
    """
    disconnected = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        await work()
        tg.cancel_scope.cancel()
    return disconnected


async def close_without_response(receive: Receive) -> None:
    """Close the TCP connection before any response bytes are written.

    ASGI has no "hang up" message, and raising before `http.response.start`
    makes uvicorn answer 500 instead of dropping. uvicorn's `receive` is a
    method of its request cycle, which holds the transport, so close that
    directly; on servers without one, fall back to raising.
    """
    transport = transport_of(receive)
    if transport is None:
        raise MockConnectionDrop("scripted connection drop")
    transport.close()
    # Wait for the server to notice, so it does not log "returned without
    # starting response" when we return.
    with anyio.move_on_after(1.0):
        while (await receive())["type"] != "http.disconnect":
            pass



def transport_of(receive: Receive) -> _Transport | None:
    """uvicorn's transport of the request (its ``receive`` is a method of the request cycle,
    which holds it), or None under another server."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    return transport if isinstance(transport, _Transport) else None
