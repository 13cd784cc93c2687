"""The server span: one per HTTP request, started live as the request comes in and ended
when its last byte is sent (a stream's, too), pure ASGI.

A caller's W3C ``traceparent`` (and ``tracestate``) makes the gateway's span its child. While
the request runs, the span is the current one (OpenTelemetry's context, a contextvar of this
request's task), so the exchange record picks up its context
(``gateway.pipeline.context.ExchangeRecord.trace``) and the recorder's writer later hangs the
policy and upstream-attempt spans under it (``gateway.telemetry.spans``).

The app's ``Tracing`` is built in the lifespan, after this middleware: it is read from the
lifespan's state (``TRACING_STATE``) on each request; None there means tracing is off and
the request passes through untouched.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.telemetry.tracing import Tracing

#: the lifespan state's key for the app's ``Tracing`` (or None)
TRACING_STATE = "tracing"

_W3C = TraceContextTextMapPropagator()


class TracingMiddleware:
    """A SERVER span around each HTTP request (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracing = scope.get("state", {}).get(TRACING_STATE) if scope["type"] == "http" else None
        if not isinstance(tracing, Tracing):
            await self.app(scope, receive, send)
            return
        span = _server_span(tracing, scope)
        token = otel_context.attach(trace.set_span_in_context(span))
        ended = False

        async def send_ending(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                _answered(span, scope, message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
                span.end()

        try:
            await self.app(scope, receive, send_ending)
        except BaseException as exc:
            if not ended:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
            raise
        finally:
            otel_context.detach(token)
            if not ended:  # no last byte: the client left, or the app failed before answering
                span.end()


def _server_span(tracing: Tracing, scope: Scope) -> Span:
    headers = _carrier(scope)
    parent = _W3C.extract(headers) if "traceparent" in headers else None
    method = scope.get("method", "GET")
    path: str = scope.get("path", "")
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    server = scope.get("server")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    agent = headers.get("user-agent")
    if agent:
        attributes["user_agent.original"] = agent
    return tracing.tracer.start_span(
        method,  # named by its route once the router matched it (``_answered``)
        context=parent,
        kind=SpanKind.SERVER,
        attributes=attributes,
    )


def _carrier(scope: Scope) -> dict[str, str]:
    """The headers the span reads (the trace context's and the agent), decoded."""
    wanted = (b"traceparent", b"tracestate", b"user-agent")
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in wanted
    }


def _answered(span: Span, scope: Scope, status: int) -> None:
    """The status, and the route's template once the router has matched it (the span's name:
    ``POST /v1/responses/{response_id}``, not each id)."""
    span.set_attribute("http.response.status_code", status)
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        span.set_attribute("http.route", template)
        span.update_name(f"{scope.get('method', 'GET')} {template}")
    if status >= 500:  # the HTTP conventions: a 4xx is the client's, not the server's error
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
