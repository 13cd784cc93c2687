"""uvicorn, as ``gateway serve`` runs it: bounded against slow clients, and a shutdown the app
hears of before the server's grace runs out.

- ``header_timeout_protocol``: uvicorn has no read timeout on a request's line and headers (a
  client trickling a byte a second holds its connection for as long as it likes). This
  httptools protocol gives each request ``server.header_timeout`` seconds from its first byte
  (or from the connection's opening) to its last header, then answers 408 and closes.
- ``GatewayServer``: on SIGTERM uvicorn stops accepting, waits ``timeout_graceful_shutdown``
  for in-flight work, then cancels it. Its ``shutdown`` first tells the app's ``Shutdown``, so
  a stream still running as the grace ends is closed by the gateway itself, with an error
  frame and its record saying ``gateway_shutdown``, instead of being cut without a word.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import RequestTimeout
from gateway.supervise import Shutdown

log = logging.getLogger("gateway.server")


def _timeout_answer(seconds: float) -> bytes:
    body = RequestTimeout(
        f"The request's headers did not arrive within {seconds:g} seconds."
    ).body_bytes()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    seconds: ClassVar[float] = 10.0
    answer: ClassVar[bytes] = _timeout_answer(10.0)
    _headers_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a keep-alive connection's next request

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._headers_timer is None:
            self._headers_timer = self.loop.call_later(self.seconds, self._expired)

    def _disarm(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _expired(self) -> None:
        self._headers_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its headers did arrive
        log.debug("closing a connection whose request headers took over %gs", self.seconds)
        self.transport.write(self.answer)
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=``, with ``server.header_timeout``."""
    return type(
        "HeaderTimeoutProtocol",
        (HeaderTimeoutProtocol,),
        {"seconds": seconds, "answer": _timeout_answer(seconds)},
    )


class GatewayServer(uvicorn.Server):
    """A uvicorn server whose shutdown the app hears of first (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self._app_shutdown = shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._app_shutdown.begin(self.config.timeout_graceful_shutdown or 0.0)
        await super().shutdown(sockets)
