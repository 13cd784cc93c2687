"""The forward stage, for whole answers: one request upstream, its body read and parsed once.
(A stream is forwarded by ``pipeline/stream.py``.)"""

from __future__ import annotations

import json
from typing import Any

import anyio

from gateway.clock import now
from gateway.errors import UpstreamError
from gateway.pipeline.context import ExchangeRecord
from gateway.upstream.client import UpstreamClient, mapped_errors
from gateway.upstream.router import Route


async def forward(
    upstream: UpstreamClient, route: Route, path: str, record: ExchangeRecord, body: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    """Send a non-streaming request upstream; return its body, raw and parsed."""
    payload = json.dumps({**body, "model": route.upstream_model}).encode()
    record.upstream_started_at = now()
    response = await upstream.open(route, path, payload, record.id, stream=False)
    record.first_byte_at = now()
    try:
        with mapped_errors(route):
            raw = await response.aread()
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()
    raw = upstream.scrub(raw)
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        raise UpstreamError(
            f"Backend '{route.backend_name}' sent a body that is not JSON.",
            code="upstream_malformed_response",
        ) from exc
    if not isinstance(answer, dict):
        raise UpstreamError(f"Backend '{route.backend_name}' sent a non-object answer.")
    return raw, answer
