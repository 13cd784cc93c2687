"""The shared upstream client keeps no cookies: one backend's Set-Cookie never goes out with a
later request, whoever makes it."""

from __future__ import annotations

import asyncio

import httpx

from gateway.upstream.client import ProxyClient


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
