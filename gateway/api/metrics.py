"""``GET /metrics``: the gateway's metrics in the Prometheus text format.

On by ``telemetry.prometheus`` (a 404 otherwise). No authentication: like every exporter,
it says how much traffic goes where, never what was said or by whom (no key, no request id in
any label); keep it off the public port (docs/observability.md, "Metrics").
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from gateway.deps import ServicesDep
from gateway.errors import NotFound

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Metrics in the Prometheus text format", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    found = services.metrics
    if found is None or not services.config.telemetry.prometheus:
        raise NotFound("Metrics are off (telemetry.prometheus: false).", code="unknown_url")
    # The gauges' callbacks and the rendering run on a worker thread, not the event loop.
    body = await asyncio.to_thread(generate_latest, found.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
