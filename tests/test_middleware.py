"""The pure-ASGI middleware on its own: a request id on every response (errors and streams
included), a body refused while it is read (never held whole), and a bug answered as a 500 in
OpenAI's error shape (or a plain page under /ui) that still carries the request id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import GatewayError, PayloadTooLarge
from gateway.middleware import BodySizeLimitMiddleware, RequestIdMiddleware

LIMIT = 16


async def ok(request: Request) -> Response:
    return JSONResponse({"request_id": request.scope["state"]["request_id"]})


async def echo(request: Request) -> Response:
    try:
        body = await request.body()
    except PayloadTooLarge as exc:
        return Response(exc.body_bytes(), status_code=exc.status, media_type="application/json")
    return JSONResponse({"length": len(body)})


async def stream(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"data: one\n\n", b"data: two\n\n"):
            yield part

    return StreamingResponse(parts(), media_type="text/event-stream")


async def boom(request: Request) -> Response:
    raise RuntimeError("a bug in a route")


async def teapot(request: Request) -> Response:
    error = GatewayError("handled by the route", code="handled")
    return Response(error.body_bytes(), status_code=418, media_type="application/json")


def wrapped() -> Starlette:
    """The two as the app stacks them: inside Starlette's own error middleware, the request
    id outermost."""
    routes = [
        Route("/ok", ok),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/boom", boom),
        Route("/ui/boom", boom),
        Route("/teapot", teapot),
    ]
    stack = [Middleware(RequestIdMiddleware), Middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)]
    return Starlette(routes=routes, middleware=stack)


def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=wrapped(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/ok", 200), ("GET", "/stream", 200), ("GET", "/missing", 404),
     ("GET", "/teapot", 418), ("GET", "/boom", 500), ("POST", "/ok", 405)],
)
def test_every_response_carries_a_request_id(method: str, path: str, status: int) -> None:
    response = call(method, path)
    assert response.status_code == status
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_") and len(request_id) == len("req_") + 32
    assert response.headers.get_list("x-request-id") == [request_id]


def test_the_id_in_the_scope_is_the_id_on_the_response_and_each_request_has_its_own() -> None:
    first, second = call("GET", "/ok"), call("GET", "/ok")
    assert first.json()["request_id"] == first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_a_streamed_response_keeps_its_body_and_gets_the_id() -> None:
    response = call("GET", "/stream")
    assert response.text == "data: one\n\ndata: two\n\n"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"].startswith("req_")


def test_a_bug_is_a_500_in_openai_shape_with_the_id() -> None:
    response = call("GET", "/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error == {
        "message": "The gateway failed unexpectedly; this was logged.",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    assert "a bug in a route" not in response.text  # the traceback is the log's, not the client's


def test_a_bug_under_ui_is_a_plain_page_naming_the_request_id() -> None:
    response = call("GET", "/ui/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-request-id"] in response.text
    assert 'href="/ui/"' in response.text


def test_a_bug_still_reaches_the_server_to_be_logged() -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=wrapped())  # raises what the app raised
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            await http.get("/boom")

    with pytest.raises(RuntimeError, match="a bug in a route"):
        asyncio.run(go())


def test_a_body_within_the_limit_is_read_whole() -> None:
    response = call("POST", "/echo", content=b"x" * LIMIT)
    assert response.status_code == 200 and response.json() == {"length": LIMIT}


def test_a_declared_length_over_the_limit_is_refused_as_413() -> None:
    response = call("POST", "/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert f"limit of {LIMIT} bytes" in response.json()["error"]["message"]
    assert response.headers["x-request-id"].startswith("req_")


class Chunks:
    """An ASGI receive that hands out a body in chunks and counts how many were taken."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.taken = 0

    async def __call__(self) -> Message:
        index = self.taken
        self.taken += 1
        more = index < len(self.chunks) - 1
        return {"type": "http.request", "body": self.chunks[index], "more_body": more}


def http_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/echo", "headers": headers}


def run_reading(receive: Receive) -> int:
    """Bytes an app read through the limit, to the end of the body."""
    read: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        total, more = 0, True
        while more:
            message = await receive()
            total += len(message.get("body", b""))
            more = bool(message.get("more_body"))
        read.append(total)

    limited = BodySizeLimitMiddleware(app, max_bytes=LIMIT)
    asyncio.run(limited(http_scope([]), receive, _no_send))
    return read[0]


def test_a_chunked_body_is_refused_at_the_chunk_that_crosses_the_limit() -> None:
    receive = Chunks([b"x" * 10, b"x" * 10, b"x" * 10, b"x" * 10])
    with pytest.raises(PayloadTooLarge):
        run_reading(receive)
    assert receive.taken == 2  # the rest of the body is never read


def test_a_chunked_body_within_the_limit_passes_through() -> None:
    receive = Chunks([b"x" * 8, b"x" * 8])
    assert run_reading(receive) == LIMIT


def test_a_declared_length_over_the_limit_reads_nothing() -> None:
    receive = Chunks([b"x"])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    async def go() -> None:
        scope = http_scope([(b"content-length", str(LIMIT + 1).encode())])
        await BodySizeLimitMiddleware(app, max_bytes=LIMIT)(scope, receive, _no_send)

    with pytest.raises(PayloadTooLarge):
        asyncio.run(go())
    assert receive.taken == 0


async def _no_send(message: Message) -> None:
    raise AssertionError("nothing is sent")


def test_other_scopes_pass_through_both_untouched() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def go() -> None:
        scope: Scope = {"type": "lifespan"}
        await RequestIdMiddleware(BodySizeLimitMiddleware(app, max_bytes=1))(
            scope, receive, _no_send
        )

    asyncio.run(go())
    assert seen == [{"type": "lifespan"}]  # no state, no request id


def test_a_bug_after_the_response_started_sends_no_second_start() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("failed mid-stream")

    async def send(message: Message) -> None:
        sent.append(message)

    async def go() -> None:
        await RequestIdMiddleware(app)(http_scope([]), _never_receive, send)

    with pytest.raises(RuntimeError, match="failed mid-stream"):
        asyncio.run(go())
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert dict(sent[0]["headers"])[b"x-request-id"].startswith(b"req_")


async def _never_receive() -> Message:
    raise AssertionError("nothing is received")


def test_the_500_body_is_json_that_the_sdks_parse() -> None:
    response = call("GET", "/boom")
    parsed = json.loads(response.content)
    assert set(parsed) == {"error"} and parsed["error"]["type"] == "server_error"
