"""The shared upstream client keeps no cookies: one backend's Set-Cookie never goes out with a
later request, whoever makes it."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
import pytest
from aiohttp import web

from gateway.config import UpstreamConfig
from gateway.upstream.client import ProxyClient, create_http_client


def test_a_cookie_a_backend_sets_is_never_sent_back() -> None:
    sent: list[str | None] = []

    def backend(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, json={})

    async def main() -> None:
        async with ProxyClient(transport=httpx.MockTransport(backend)) as client:
            first = await client.post("http://127.0.0.1:9/v1/chat/completions", json={})
            assert first.headers["set-cookie"].startswith("session=")
            await client.post("http://127.0.0.1:9/v1/chat/completions", json={})
            client.cookies = {"other": "1"}  # and none can be set on it either
            await client.post("http://127.0.0.1:9/v1/chat/completions", json={})
            assert not client.cookies

    asyncio.run(main())
    assert sent == [None, None, None]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_neither_transport_keeps_a_backends_cookie(transport: Literal["aiohttp", "httpx"]) -> None:
    """Against a real backend on a loopback port, through the client the gateway builds."""
    sent: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        sent.append(request.headers.get("cookie"))
        response = web.json_response({})
        response.set_cookie("session", "abc")
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)  # reached as localhost: a jar keeps
        # cookies from a host name, not from an IP address
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = create_http_client(UpstreamConfig(transport=transport))
        try:
            for _ in range(3):
                done = await client.post(f"http://localhost:{port}/v1/chat/completions", json={})
                assert done.status_code == 200 and "session=abc" in done.headers["set-cookie"]
        finally:
            await client.aclose()
            await runner.cleanup()

    asyncio.run(main())
    assert sent == [None, None, None]
