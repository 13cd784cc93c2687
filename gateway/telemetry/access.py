"""The access log: one line per HTTP request, written as its last byte has gone (a stream's
too), by a pure ASGI middleware.

The line (logger ``gateway.access``, its fields as the record's extras, so the JSON format
puts each at the top level): ``request_id``, ``trace_id`` (while tracing is on), ``method``,
``path`` (never the query string), ``status``, ``duration_ms``; for a model call also
``context``, ``action`` (what the policy's decision enforced: allow, redact, block…),
``exchange_status`` and ``ttfb_ms`` (the first byte of the answer sent to the caller). Never a
header (so never a key), never a body.

The request id is ``RequestIdMiddleware``'s (``scope["state"]["request_id"]``); the exchange is
what the pipeline puts at ``scope["state"]["exchange"]`` (``gateway.pipeline.run``): its
decision names the context and the action. The trace id is the current span's (the server
span, ``gateway.telemetry.asgi``) as the request comes in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.policy.decision import Decision

#: the key under which the pipeline leaves the request's exchange record in the scope's state
EXCHANGE_STATE = "exchange"

log = logging.getLogger("gateway.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        trace_id = _trace_id()
        status = 500  # unless an answer began: the app failed before it
        first_byte: float | None = None

        async def watched(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif first_byte is None and message["type"] == "http.response.body" and message.get(
                "body"
            ):
                first_byte = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            line = _line(scope, status, trace_id, started, first_byte)
            log.info("%s %s %d", line["method"], line["path"], status, extra=line)


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 1)


def _line(
    scope: Scope, status: int, trace_id: str | None, started: float, first_byte: float | None
) -> dict[str, Any]:
    state: dict[str, Any] = scope.get("state") or {}
    line: dict[str, Any] = {
        "request_id": state.get("request_id"),
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": status,
        "duration_ms": _ms(started, time.perf_counter()),
    }
    if trace_id is not None:
        line["trace_id"] = trace_id
    exchange = state.get(EXCHANGE_STATE)
    if exchange is None:
        return line
    decision = getattr(exchange, "decision", None)
    if isinstance(decision, Decision):
        line["context"] = decision.context
        line["action"] = str(decision.enforced)
    line["exchange_status"] = str(getattr(exchange, "status", ""))
    if first_byte is not None:
        line["ttfb_ms"] = _ms(started, first_byte)
    return line
