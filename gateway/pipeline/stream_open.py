"""Opening a stream upstream: everything that can fail before the first byte reaches the
client fails here, as a normal HTTP error; what follows is ``ProxyStream``'s."""

from __future__ import annotations

import json
from typing import Any

import anyio

from gateway.clock import now
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.stream import ProxyStream
from gateway.pipeline.stream_events import first_event, scrubbed
from gateway.upstream.router import Route
from gateway.upstream.sse import events


async def open_stream(
    services: PipelineNeeds,
    route: Route,
    log: ExchangeRecord,
    body: dict[str, Any],
    *,
    inject_usage: bool,
    output: OutputStage | None = None,
    headers: dict[str, str] | None = None,
    heavy: bool = False,
) -> ProxyStream:
    upstream_body = {**body, "model": route.upstream_model}
    inject = inject_usage and route.backend.stream_usage
    if inject:
        upstream_body["stream_options"] = {
            **(body.get("stream_options") or {}),
            "include_usage": True,
        }
    log.upstream_started_at = now()
    response = await services.upstream.open(
        route, "/chat/completions", json.dumps(upstream_body).encode(), log.id, stream=True
    )
    frames = scrubbed(events(response.aiter_bytes()), services.upstream)
    try:
        first = await first_event(route, frames)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await response.aclose()
        raise
    return ProxyStream(
        services,
        route,
        log,
        response,
        frames,
        first,
        strip_usage=inject,
        output=output if output is not None and output.active else None,
        headers=headers or {},
        choices=body.get("n") or 1,
        heavy=heavy,
    )
