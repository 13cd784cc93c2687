"""Opening a stream upstream: everything that can fail before the first byte reaches the
client fails here, as a normal HTTP error, after the plan's retries, failover and fallback
(``gateway.upstream.attempts``): a try ends once the first event is in hand, so the client
sees one clean stream from whichever backend answered. What follows is ``ProxyStream``'s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from gateway.clock import now
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.stages.route import served
from gateway.pipeline.stream import Ending, Frames, ProxyStream
from gateway.pipeline.stream_chat import ChatFrames
from gateway.pipeline.stream_events import bounded, first_event, scrubbed
from gateway.upstream.attempts import run_plan
from gateway.upstream.router import Route, RoutePlan
from gateway.upstream.sse import Event, events


@dataclass(frozen=True, slots=True)
class _Opened:
    response: httpx.Response
    frames: AsyncIterator[Event]
    first: Event
    inject: bool


#: makes a stream's frames once the stream is open: from its ending, whether the gateway
#: asked for usage on the client's behalf (which the frames then take out again), and the
#: route that answered (a backend that speaks the Responses API itself, or one translated)
FramesFactory = Callable[[Ending, bool, Route], Frames]
#: what one try sends to its route: the path and the body (``stages.forward.Build``)
Build = Callable[[Route], tuple[str, dict[str, Any]]]


async def open_stream(
    services: PipelineNeeds,
    plan: RoutePlan,
    log: ExchangeRecord,
    body: dict[str, Any] | Build,
    *,
    inject_usage: bool,
    output: OutputStage | None = None,
    headers: dict[str, str] | None = None,
    heavy: bool = False,
    frames: FramesFactory | None = None,
) -> ProxyStream:
    """Open a stream by the plan. ``body`` is a chat completion request, or what to send each
    route tried (``Build``); ``frames`` says what the events become (by default a chat
    completion stream's, through ``output``). ``inject_usage`` asks a backend that takes
    ``stream_options`` for usage on the client's behalf."""
    log.upstream_started_at = now()
    build: Build = body if callable(body) else (lambda _: ("/chat/completions", body))
    choices = 1 if callable(body) else body.get("n") or 1

    async def once(route: Route) -> _Opened:
        path, built = build(route)
        return await _open(services, route, log, built, path=path, inject_usage=inject_usage)

    try:
        route, opened = await run_plan(plan, once, log.attempts)
    finally:
        served(log, plan)
    _active_until_it_ends(plan, log)
    ending = Ending()
    if frames is None:
        active = output if output is not None and output.active else None

        def frames(ending: Ending, strip: bool, _: Route) -> Frames:
            return ChatFrames(
                services, ending, strip_usage=strip, output=active, choices=choices, heavy=heavy
            )

    return ProxyStream(
        services,
        route,
        log,
        opened.response,
        opened.frames,
        opened.first,
        frames(ending, opened.inject, route),
        ending,
        headers=headers or {},
    )


async def _open(
    services: PipelineNeeds,
    route: Route,
    log: ExchangeRecord,
    body: dict[str, Any],
    *,
    path: str,
    inject_usage: bool,
) -> _Opened:
    """One try: the stream opened and its first event read (or the stream closed again)."""
    upstream_body = {**body, "model": route.upstream_model}
    inject = inject_usage and route.backend.stream_usage
    if inject:
        upstream_body["stream_options"] = {
            **(body.get("stream_options") or {}),
            "include_usage": True,
        }
    response = await services.upstream.open(
        route, path, json.dumps(upstream_body).encode(), log.id, stream=True
    )
    frames = scrubbed(events(bounded(response.aiter_bytes(), route)), services.upstream)
    try:
        first = await first_event(route, frames)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await response.aclose()
        raise
    return _Opened(response, frames, first, inject)


def _active_until_it_ends(plan: RoutePlan, log: ExchangeRecord) -> None:
    """A stream is a request in flight to its backend until it ends: the retry budget's share
    counts it (its record's ``on_finish`` runs once, however the stream ends)."""
    budget = plan.budget
    budget.active += 1

    def ended(_: ExchangeRecord) -> None:
        budget.active -= 1

    log.on_finish.append(ended)
