"""The forward stage, for whole answers: the request upstream by its plan (retries, failover,
fallback: ``gateway.upstream.attempts``), the answer's body read and parsed once. (A stream
is opened by ``pipeline/stream_open.py``, by the same plan.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import anyio

from gateway.clock import now
from gateway.errors import UpstreamError
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.stages.route import served
from gateway.upstream.attempts import run_plan
from gateway.upstream.client import UpstreamClient, mapped_errors
from gateway.upstream.failures import MALFORMED
from gateway.upstream.router import Route, RoutePlan

#: what one try sends to the route it is made on: the path and the body (a backend that
#: speaks the Responses API itself is sent a Responses request, one that does not a chat one)
Build = Callable[[Route], tuple[str, dict[str, Any]]]


async def forward(
    upstream: UpstreamClient,
    plan: RoutePlan,
    path: str,
    record: ExchangeRecord,
    body: dict[str, Any],
) -> tuple[bytes, dict[str, Any]]:
    """Send a non-streaming request upstream; return its body, raw and parsed."""
    _, raw, answer = await forward_built(upstream, plan, record, lambda _: (path, body))
    return raw, answer


async def forward_built(
    upstream: UpstreamClient, plan: RoutePlan, record: ExchangeRecord, build: Build
) -> tuple[Route, bytes, dict[str, Any]]:
    """Send a non-streaming request upstream, built for each route tried; return the route
    that answered and its body, raw and parsed."""
    record.upstream_started_at = now()

    async def once(route: Route) -> tuple[bytes, dict[str, Any]]:
        path, body = build(route)
        return await _once(upstream, route, path, record, body)

    try:
        route, (raw, answer) = await run_plan(plan, once, record.attempts)
    finally:
        served(record, plan)
    return route, raw, answer


async def _once(
    upstream: UpstreamClient, route: Route, path: str, record: ExchangeRecord, body: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    """One try: the whole answer within the backend's ``response`` timeout, parsed."""
    payload = json.dumps({**body, "model": route.upstream_model}).encode()
    with mapped_errors(route):
        async with asyncio.timeout(route.backend.timeouts.response):
            response = await upstream.open(route, path, payload, record.id, stream=False)
            record.first_byte_at = now()
            try:
                raw = await response.aread()
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
    raw = upstream.scrub(raw)
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        error = UpstreamError(f"Backend '{route.backend_name}' sent a body that is not JSON.")
        error.code, error.detail = MALFORMED, f"{len(raw)} bytes: {raw[:200]!r}"
        raise error from exc
    if not isinstance(answer, dict):
        error = UpstreamError(f"Backend '{route.backend_name}' sent a non-object answer.")
        error.code = MALFORMED
        raise error
    return raw, answer
