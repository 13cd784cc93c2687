"""The one shared upstream HTTP client, and the mapping of its failures to gateway errors.

Only what the gateway chooses goes upstream: the backend's own key, a content type, our
request id (in the backend's ``request_id_header``, or not at all). The caller's headers (and
key) never do. Upstream failures become 502/504 (a 5xx's body in the error's ``detail``, the
record's and the log's only); an upstream 4xx goes back to the client with its body (a body
not in OpenAI's error shape as its scrubbed, bounded text in that shape), except 401/403,
which mean the gateway's own backend credentials are wrong: a 502.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio
import httpx

from gateway.config import Timeouts, UpstreamConfig
from gateway.errors import UpstreamPassthrough
from gateway.upstream import error_text
from gateway.upstream.failures import AUTH, STATUS, UpstreamStatusError, mapped
from gateway.upstream.router import Route

_PASSED_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: one client serves every caller of every context, so a cookie
    one backend set must never go out with another caller's request (and reading Set-Cookie
    on every answer costs the request path for nothing)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class ProxyClient(httpx.AsyncClient):
    """httpx's client, without a cookie jar (``_NoCookies``)."""

    _jar = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return None  # a backend's cookies are never kept


def create_http_client(config: UpstreamConfig) -> httpx.AsyncClient:
    # An idle pooled connection is dropped before the backend's own keep-alive closes it
    # (uvicorn's is 5 s): reusing one the backend is closing fails with "Server disconnected".
    limits = httpx.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_connections,
        keepalive_expiry=config.keepalive_seconds,
    )
    if config.transport == "aiohttp":
        transport: httpx.AsyncBaseTransport = _aiohttp_transport(limits)
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    return ProxyClient(transport=transport, trust_env=False, follow_redirects=False)


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """httpx over aiohttp, whose session keeps no cookies either (aiohttp's own jar would)."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    class CookielessAiohttp(AiohttpTransport):
        def get_client(self) -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                keepalive_timeout=self.limits.keepalive_expiry,
                ssl=self.ssl_context,
                limit=self.limits.max_connections or 100,  # aiohttp's default when unset
            )
            return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return CookielessAiohttp(limits=limits, trust_env=False)


def timeout_for(timeouts: Timeouts, *, stream: bool) -> httpx.Timeout:
    # A stream's reads are bounded by the caller (``stream_events.bounded``: the first by
    # first_byte, the rest by idle); the transport's own bound is only the looser of the two.
    read = max(timeouts.idle, timeouts.first_byte) if stream else timeouts.response
    return httpx.Timeout(
        connect=timeouts.connect, read=read, write=timeouts.write, pool=timeouts.pool
    )


class UpstreamClient:
    def __init__(self, http: httpx.AsyncClient, secrets: list[str]) -> None:
        self._http = http
        self._texts = [s for s in secrets if s]
        self._secrets = [s.encode() for s in self._texts]

    def secret_texts(self) -> list[str]:
        """The backends' keys, as text (a stream's text is scrubbed across its frames)."""
        return list(self._texts)

    async def open(
        self, route: Route, path: str, body: bytes, request_id: str, *, stream: bool
    ) -> httpx.Response:
        """Send the request; return a response whose body is not read yet, status checked."""
        headers = {"content-type": "application/json"}
        if route.backend.request_id_header:
            headers[route.backend.request_id_header] = request_id
        if route.api_key:
            headers["authorization"] = f"Bearer {route.api_key}"
        request = self._http.build_request(
            "POST",
            route.base_url + path,
            content=body,
            headers=headers,
            timeout=timeout_for(route.backend.timeouts, stream=stream),
        )
        with mapped_errors(route):
            response = await self._http.send(request, stream=True)
        if response.status_code >= 300:
            await self._raise_for_status(route, response)
        return response

    async def _raise_for_status(self, route: Route, response: httpx.Response) -> None:
        try:
            with mapped_errors(route):
                body = await response.aread()
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        status = response.status_code
        if status in (401, 403):
            raise UpstreamStatusError(
                f"Backend '{route.backend_name}' refused the gateway's credentials ({status}). "
                "The operator must check the backend's API key.",
                code=AUTH,
                upstream_status=status,
            )
        body, kind = self.scrub(body), response.headers.get("content-type", "")
        if 400 <= status < 500:
            raise _passthrough(route.backend_name, response, body)
        # The backend's own words (or a proxy's, which may name addresses) go to the record
        # and the log only: the client learns which backend failed and how.
        failed = UpstreamStatusError(
            f"Backend '{route.backend_name}' failed with HTTP {status}.",
            code=STATUS,
            upstream_status=status,
        )
        failed.detail = error_text.shown(body, kind) or "(empty body)"
        raise failed

    def holds_secret(self, body: bytes) -> bool:
        return any(secret in body for secret in self._secrets)

    def scrub(self, body: bytes) -> bytes:
        for secret in self._secrets:
            if secret in body:
                body = body.replace(secret, b"[redacted]")
        return body


def _passthrough(backend: str, response: httpx.Response, body: bytes) -> UpstreamPassthrough:
    """The backend's 4xx for the client: OpenAI's error shape as sent, or made from its text."""
    status = response.status_code
    headers = {k: response.headers[k] for k in _PASSED_HEADERS if k in response.headers}
    if error_text.is_openai_error(body):
        return UpstreamPassthrough(status, body, headers)
    kind = response.headers.get("content-type", "")
    error = UpstreamPassthrough(
        status, error_text.client_error_body(backend, status, body, kind), headers
    )
    error.message = error.body()["error"]["message"]  # the record's error_message says why too
    return error


@contextlib.contextmanager
def mapped_errors(route: Route) -> Iterator[None]:
    """Either transport's exceptions, as the gateway's errors (``failures.mapped``)."""
    with mapped(route.backend_name):
        yield
