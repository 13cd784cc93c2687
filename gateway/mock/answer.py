"""How the mock sends an answer, whatever its API: whole (or a scripted fault instead), or
as a stream of server-sent events paced by the script and cut short by its faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio

from gateway.mock.asgi import (
    SSE_HEADERS,
    Exchange,
    MockConnectionDrop,
    close_without_response,
    dumps,
    error_body,
    run_watched,
    send_bytes,
    send_json,
)
from gateway.mock.raw import MALFORMED, break_chunked, write_raw
from gateway.mock.script import Fault

MALFORMED_FRAME = b"data: {not json\n\n"


@dataclass(frozen=True, slots=True)
class Frames:
    """A whole stream, rendered: `steps` are the content chunks (paced by the token delay,
    counted by the faults' `*_after`), `closing` ends it (its last frame ends the body)."""

    opening: tuple[bytes, ...]
    steps: tuple[tuple[bytes, ...], ...]
    closing: tuple[bytes, ...]
    error: bytes  # the scripted error frame (error_frame_after)
    done: bytes  # what a scripted early end (done_after) sends last


def streams(stream: bool, fault: Fault | None) -> bool:
    """A stream is answered as one, unless the fault is a whole-response one."""
    return stream and (fault is None or (fault.status is None and fault.malformed is None))


def fault_status_body(fault: Fault, status: int) -> bytes:
    if fault.body is not None:
        return dumps(fault.body)
    if status == 429:
        return error_body("Mock rate limit reached.", "requests", None, "rate_limit_exceeded")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_body(f"Mock upstream fault (HTTP {status}).", kind, None, "mock_fault")


async def respond_whole(ex: Exchange, fault: Fault | None, body: Callable[[], bytes]) -> None:
    """The answer ``body`` makes, or the scripted fault in its place."""
    if fault is not None and fault.first_byte_delay:
        delay = fault.first_byte_delay
        if await run_watched(ex.receive, lambda: anyio.sleep(delay)):
            ex.record["outcome"] = "client_disconnected"
            return
    extra = [(k.lower().encode(), v.encode()) for k, v in fault.headers.items()] if fault else []
    if fault is not None and fault.malformed is not None:
        ex.record["outcome"] = "fault"
        await write_raw(ex.receive, MALFORMED[fault.malformed])
    elif fault is not None and fault.status is not None and fault.text is not None:
        ex.record["outcome"] = "fault"
        await send_bytes(ex.send, fault.status, fault.text.encode(), fault.content_type, extra)
    elif fault is not None and fault.status is not None:
        ex.record["outcome"] = "fault"
        await send_json(ex.send, fault.status, fault_status_body(fault, fault.status), extra)
    elif fault is not None and fault.drop_after is not None:
        ex.record["outcome"] = "fault"
        await close_without_response(ex.receive)
    else:
        await send_json(ex.send, 200, body())


async def stream(ex: Exchange, frames: Frames, fault: Fault | None, token_delay: float) -> None:
    await ex.send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})
    writer = _StreamWriter(ex, frames, fault, token_delay)
    disconnected = await run_watched(ex.receive, writer.run)
    if not writer.finished and (disconnected or writer.gone):
        ex.record["outcome"] = "client_disconnected"
    if writer.dropped:
        # Raised outside the task group so the server sees this exception, not a group.
        raise MockConnectionDrop("scripted mid-stream connection drop")
    if writer.broken:
        await write_raw(ex.receive, b"")  # the connection closed at last


class _SendFailed(Exception):
    pass


class _StreamWriter:
    """Writes one SSE stream, counting content chunks for faults and the log."""

    def __init__(
        self, ex: Exchange, frames: Frames, fault: Fault | None, token_delay: float
    ) -> None:
        self._ex = ex
        self._frames = frames
        self._fault = fault
        self._delay = token_delay
        self._fault_after = fault.chunks_before() if fault is not None else None
        self.finished = False
        self.gone = False
        self.dropped = False
        self.broken = False

    async def _emit(self, data: bytes, more_body: bool = True) -> None:
        try:
            await self._ex.send(
                {"type": "http.response.body", "body": data, "more_body": more_body}
            )
        except Exception as exc:  # any failure to write means the peer is gone
            raise _SendFailed from exc

    async def run(self) -> None:
        try:
            await self._write()
        except _SendFailed:
            self.gone = True

    async def _write(self) -> None:
        if self._fault is not None and self._fault.first_byte_delay:
            await anyio.sleep(self._fault.first_byte_delay)
        for frame in self._frames.opening:
            await self._emit(frame)
        for step in self._frames.steps:
            if self._delay:
                await anyio.sleep(self._delay)
            for frame in step:
                if self._ex.record["chunks_sent"] == self._fault_after:
                    await self._fire()
                    return
                await self._emit(frame)
                self._ex.record["chunks_sent"] += 1
        if self._fault_after is not None:
            await self._fire()
            return
        closing = self._frames.closing
        for frame in closing[:-1]:
            await self._emit(frame)
        await self._emit(closing[-1] if closing else b"", more_body=False)
        self.finished = True

    async def _break(self) -> None:
        self.broken = self.finished = True
        await break_chunked(self._ex.receive)  # until the client gives up (`run_watched`)

    async def _fire(self) -> None:
        fault = self._fault
        assert fault is not None  # only called when a fault counter is set
        self._ex.record["outcome"] = "fault"
        if fault.drop_after is not None:
            self.dropped = True
        elif fault.broken_chunk_after is not None:
            await self._break()
            return
        elif fault.malformed_after is not None:
            await self._emit(MALFORMED_FRAME)
            await self._emit(self._frames.done, more_body=False)
        elif fault.done_after is not None:
            await self._emit(self._frames.done, more_body=False)
        else:
            await self._emit(self._frames.error, more_body=False)
        self.finished = True
