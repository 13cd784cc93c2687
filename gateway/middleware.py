"""Pure ASGI middleware (the gateway streams, so no BaseHTTPMiddleware)."""

from __future__ import annotations

import asyncio
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError, PayloadTooLarge, RequestTimeout


class RequestIdMiddleware:
    """Give every request an id, in ``scope["state"]`` and on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # A bug: answer in OpenAI's shape, with the id, then let the server log it.
            if not started:
                kind, body = _internal_error(scope.get("path", ""), request_id)
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", kind)],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            raise


def _internal_error(path: str, request_id: str) -> tuple[bytes, bytes]:
    """A bug's answer: OpenAI's error shape, or a plain page for the reviewers' web page."""
    message = "The gateway failed unexpectedly; this was logged."
    if path == "/ui" or path.startswith("/ui/"):
        page = (
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Error</title>'
            f"<h1>500: something went wrong</h1><p>{message} Request id: {request_id}.</p>"
            f'<p><a href="/ui/">Back to your queues</a></p></html>'
        )
        return b"text/html; charset=utf-8", page.encode()
    return b"application/json", GatewayError(message, code="internal_error").body_bytes()


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit while they are read, so they are never held in memory.

    The refusal is raised from ``receive``, inside the route, so the request is still recorded.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        too_big = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if too_big:
                raise self._error()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body exceeds the gateway's limit of {self.max_bytes} bytes."
        )


class BodyTimeoutMiddleware:
    """A client has ``seconds`` from its headers' arrival to send its whole body (a body
    trickled a byte a second holds no connection for long): past it, ``receive`` raises a 408
    ``request_timeout``, inside the route, so the exchange is recorded; the answer closes the
    connection. Once the body is in, ``receive`` (which then waits for a disconnect) is free.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise self._error() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed_receive, send)

    def _error(self) -> RequestTimeout:
        return RequestTimeout(
            f"The request body did not arrive within {self.seconds:g} seconds.",
            headers={"connection": "close"},
        )
