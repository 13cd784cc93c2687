"""Server-sent events as the streaming path reads and writes them: the frames it writes, and the
upstream's events as it reads them (scrubbed of the backend's key, the first one timed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from gateway.upstream.client import UpstreamClient, mapped_errors
from gateway.upstream.router import Route
from gateway.upstream.sse import Event, parse_event


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def error_frame(exc: GatewayError) -> bytes:
    return b"data: " + exc.body_bytes() + b"\n\n"


async def scrubbed(frames: AsyncIterator[Event], upstream: UpstreamClient) -> AsyncIterator[Event]:
    """The backend's key never comes back, even inside an error frame of a 200 stream."""
    async for event in frames:
        if upstream.holds_secret(event.raw):
            event = parse_event(upstream.scrub(event.raw).removesuffix(b"\n\n"))
        yield event


async def first_event(route: Route, frames: AsyncIterator[Event]) -> Event:
    timeout = route.backend.timeouts.first_byte
    try:
        with mapped_errors(route):
            async with asyncio.timeout(timeout):
                first = await anext(frames)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"Backend '{route.backend_name}' sent nothing within {timeout:g} s."
        ) from exc
    except StopAsyncIteration as exc:
        raise UpstreamError(f"Backend '{route.backend_name}' ended the stream at once.") from exc
    error = error_in(first)
    if error is not None:
        raise UpstreamError(f"Backend '{route.backend_name}' failed: {error}")
    return first


def error_in(event: Event) -> str | None:
    if event.event == "error" or (event.data and event.data.startswith('{"error"')):
        return (event.data or "error event")[:500]
    return None
