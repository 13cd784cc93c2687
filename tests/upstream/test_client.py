"""The upstream client against httpx's own test transport: what goes upstream (and what never
does), each upstream status and each transport failure as the gateway error it becomes, and the
backend's key kept out of everything a client could see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.config import BackendConfig, Timeouts
from gateway.errors import GatewayError, UpstreamError, UpstreamPassthrough, UpstreamTimeout
from gateway.upstream.client import UpstreamClient, timeout_for
from gateway.upstream.error_text import MAX_TEXT
from gateway.upstream.failures import UpstreamStatusError
from gateway.upstream.router import Route

SECRET = "sk-backend-0123456789abcdefXYZ"
TIMEOUTS = Timeouts(connect=1, response=7, first_byte=2, idle=3, write=4, pool=5)
Handler = Callable[[httpx.Request], httpx.Response]


def route(*, api_key: str | None = SECRET, request_id_header: str | None = "X-Trace") -> Route:
    backend = BackendConfig(
        base_url="http://backend.test/v1", timeouts=TIMEOUTS, request_id_header=request_id_header
    )
    return Route("small", "vllm", backend, "http://backend.test/v1", "qwen", api_key)


def send(
    handler: Handler, *, stream: bool = False, target: Route | None = None
) -> tuple[httpx.Response, list[httpx.Request]]:
    """One request through the client; the response (body read) and what the backend got."""
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as http:
            client = UpstreamClient(http, [SECRET])
            response = await client.open(
                target or route(), "/chat/completions", b'{"model":"qwen"}', "req_1", stream=stream
            )
            await response.aread()
            await response.aclose()
            return response

    return asyncio.run(go()), seen


def failure(handler: Handler, **kwargs: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        send(handler, **kwargs)
    error = caught.value
    assert SECRET not in error.message and SECRET.encode() not in error.body_bytes()
    return error


def answer(status: int, body: bytes = b"", **headers: str) -> Handler:
    return lambda request: httpx.Response(status, content=body, headers=headers)


def raising(exc: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("the transport failed", request=request)

    return handler


def test_only_what_the_gateway_chooses_goes_upstream() -> None:
    response, seen = send(answer(200, b'{"ok": true}'))
    assert response.status_code == 200 and response.json() == {"ok": True}
    request = seen[0]
    assert (request.method, str(request.url)) == ("POST", "http://backend.test/v1/chat/completions")
    assert request.content == b'{"model":"qwen"}'
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-trace"] == "req_1"


def test_no_key_and_no_id_header_send_neither() -> None:
    _, seen = send(answer(200, b"{}"), target=route(api_key=None, request_id_header=None))
    assert "authorization" not in seen[0].headers
    assert "x-trace" not in seen[0].headers and "x-situate-request-id" not in seen[0].headers


@pytest.mark.parametrize(("stream", "read"), [(False, 7), (True, 3)])
def test_a_stream_reads_with_its_idle_timeout_an_answer_with_its_response_timeout(
    stream: bool, read: float
) -> None:
    _, seen = send(answer(200, b"{}"), stream=stream)
    assert seen[0].extensions["timeout"] == {"connect": 1, "read": read, "write": 4, "pool": 5}
    assert timeout_for(TIMEOUTS, stream=stream) == httpx.Timeout(
        connect=1, read=read, write=4, pool=5
    )


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_the_operators_problem_a_502(status: int) -> None:
    error = failure(answer(status, f'{{"error": "bad key {SECRET}"}}'.encode()))
    assert isinstance(error, UpstreamError) and error.status == 502
    assert error.code == "upstream_auth_failed"
    # no retry (the SDK's or the gateway's) can fix the gateway's own credentials
    assert not error.retryable and error.headers()["x-should-retry"] == "false"
    assert f"refused the gateway's credentials ({status})" in error.message
    assert "backend's API key" in error.message


def test_an_openai_shaped_4xx_goes_back_as_sent_minus_the_key() -> None:
    said = {"message": f"max_tokens too big for {SECRET}", "type": "invalid", "code": "x"}
    body = json.dumps({"error": said}).encode()
    error = failure(answer(400, body, **{"content-type": "application/json"}))
    assert isinstance(error, UpstreamPassthrough) and error.status == 400
    assert error.body()["error"]["message"] == "max_tokens too big for [redacted]"
    assert error.body()["error"]["code"] == "x"
    assert error.headers() == {"x-should-retry": "false"}


def test_a_429_stays_retryable_and_keeps_only_the_retry_headers() -> None:
    headers = {"retry-after": "2", "retry-after-ms": "2000", "x-internal": "no", "set-cookie": "a"}
    error = failure(answer(429, b'{"error": {"message": "slow down"}}', **headers))
    assert isinstance(error, UpstreamPassthrough) and error.status == 429 and error.retryable
    assert error.headers() == {"retry-after": "2", "retry-after-ms": "2000"}


@pytest.mark.parametrize("status", [408, 409])
def test_timeouts_and_conflicts_are_retryable_passthroughs(status: int) -> None:
    error = failure(answer(status, b"try again"))
    assert error.status == status and error.retryable


def test_a_backends_say_on_retrying_is_passed_on() -> None:
    error = failure(answer(429, b"", **{"x-should-retry": "false"}))
    assert error.headers()["x-should-retry"] == "false"


def test_a_plain_4xx_is_put_in_openai_shape_scrubbed() -> None:
    body = f"no such model; key={SECRET}".encode()
    error = failure(answer(404, body, **{"content-type": "text/plain"}))
    assert isinstance(error, UpstreamPassthrough) and error.status == 404
    message = error.body()["error"]["message"]
    assert message == "Backend 'vllm' refused the request (HTTP 404): no such model; key=[redacted]"
    assert error.message == message  # the record says why too
    assert error.body()["error"]["code"] == "upstream_client_error"


def test_an_empty_4xx_says_it_was_empty() -> None:
    message = failure(answer(422)).body()["error"]["message"]
    assert message == "Backend 'vllm' refused the request (HTTP 422) with an empty body."


@pytest.mark.parametrize("status", [500, 502, 503, 520])
def test_a_5xx_is_a_502_with_the_backends_text_in_the_detail_only(status: int) -> None:
    """A 5xx's body is often a proxy's page, which may name addresses: the client is told
    which backend failed and how; the words go to the record and the log."""
    page = b"<html><body><h1>Service down at 10.0.0.7:8000</h1><script>x()</script></body></html>"
    error = failure(answer(status, page, **{"content-type": "text/html"}))
    assert isinstance(error, UpstreamStatusError) and error.status == 502 and error.retryable
    assert (error.code, error.upstream_status) == ("upstream_error", status)
    assert error.message == f"Backend 'vllm' failed with HTTP {status}."
    assert error.detail == "Service down at 10.0.0.7:8000"
    assert "10.0.0.7" not in error.body_bytes().decode()
    assert error.recorded == f"{error.message} (Service down at 10.0.0.7:8000)"


def test_a_5xx_with_no_body_says_so() -> None:
    assert failure(answer(500)).detail == "(empty body)"


def test_a_5xx_naming_the_backends_key_never_shows_it() -> None:
    error = failure(answer(500, f"upstream auth with {SECRET} failed".encode()))
    assert SECRET not in error.recorded and "[redacted]" in error.recorded


def test_a_long_5xx_body_is_bounded() -> None:
    error = failure(answer(500, b"word " * 400))
    assert error.detail is not None and error.detail.endswith("more characters)")
    assert len(error.detail) < MAX_TEXT + 100


def test_a_redirect_is_not_followed_and_is_an_error() -> None:
    error = failure(answer(302, b"", location="http://elsewhere.test/"))
    assert error.status == 502 and "HTTP 302" in error.message


@pytest.mark.parametrize(
    ("exc", "kind", "status", "code"),
    [
        (httpx.ConnectError, UpstreamError, 502, "upstream_unreachable"),
        (httpx.ConnectTimeout, UpstreamError, 502, "upstream_unreachable"),
        (httpx.ReadTimeout, UpstreamTimeout, 504, "upstream_timeout"),
        (httpx.WriteTimeout, UpstreamTimeout, 504, "upstream_timeout"),
        (httpx.PoolTimeout, UpstreamTimeout, 504, "upstream_timeout"),
        (httpx.RemoteProtocolError, UpstreamError, 502, "upstream_malformed_response"),
        (httpx.ReadError, UpstreamError, 502, "upstream_connection_error"),
    ],
)
def test_each_transport_failure_is_its_gateway_error(
    exc: type[httpx.TransportError], kind: type[GatewayError], status: int, code: str
) -> None:
    error = failure(raising(exc))
    assert type(error) is kind and (error.status, error.code) == (status, code)
    assert "ackend 'vllm'" in error.message
    assert isinstance(error.__cause__, exc)  # raised from the transport's exception


def test_a_backend_that_hung_up_is_a_connection_error_with_the_words_in_the_detail() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    error = failure(handler)
    assert (error.code, error.message) == (
        "upstream_connection_error",
        "Backend 'vllm' closed the connection or failed on it.",
    )
    assert error.detail == "RemoteProtocolError: Server disconnected without sending a response."


class BrokenBody(httpx.AsyncByteStream):
    """An error body that breaks off while it is read; remembers being closed."""

    closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"partial"
        raise httpx.ReadError("connection reset")

    async def aclose(self) -> None:
        BrokenBody.closed = True


def test_an_error_body_that_breaks_off_is_mapped_and_closed() -> None:
    BrokenBody.closed = False
    error = failure(lambda request: httpx.Response(500, stream=BrokenBody()))
    assert error.code == "upstream_connection_error" and "ReadError" not in error.message
    assert error.detail == "ReadError: connection reset"  # the library's words: record only
    assert BrokenBody.closed


def test_a_gateway_error_inside_passes_unchanged() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise UpstreamTimeout("already mapped")

    error = failure(handler)
    assert type(error) is UpstreamTimeout and error.message == "already mapped"


def test_scrub_and_holds_secret() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer(200)))
    client = UpstreamClient(http, [SECRET, "second-key"])
    body = f"a {SECRET} b second-key c".encode()
    assert client.holds_secret(body) and not client.holds_secret(b"nothing here")
    assert client.scrub(body) == b"a [redacted] b [redacted] c"
    asyncio.run(http.aclose())
