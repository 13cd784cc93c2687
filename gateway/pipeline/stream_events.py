"""Server-sent events as the streaming path reads and writes them: the frames it writes, and the
upstream's events as it reads them (every read bounded in time, scrubbed of the backend's key
even across frames, the first one timed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from gateway.upstream.client import UpstreamClient, mapped_errors
from gateway.upstream.failures import error_event_failure, upstream_failure
from gateway.upstream.router import Route
from gateway.upstream.sse import Event, parse_event

REDACTED = "[redacted]"


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def error_frame(exc: GatewayError) -> bytes:
    return b"data: " + exc.body_bytes() + b"\n\n"


class OwnFrames:
    """The frames a stream's ``Frames`` made itself (an error, the end it writes when the
    backend stops), which come back to its ``frame`` as events without data: told apart by
    identity from the backend's, whose events without data are not the gateway's to pass."""

    def __init__(self) -> None:
        self._made: list[bytes] = []

    def made(self, raw: bytes) -> bytes:
        self._made.append(raw)
        return raw

    def mine(self, event: Event) -> bool:
        return event.data is None and any(raw is event.raw for raw in self._made)


def comment_only(event: Event) -> bool:
    """Whether a data-less event is only SSE comments (``: keep-alive``), which say nothing."""
    lines = [line for line in event.raw.decode(errors="replace").splitlines() if line.strip()]
    return all(line.startswith(":") for line in lines)


async def bounded(chunks: AsyncIterator[bytes], route: Route) -> AsyncIterator[bytes]:
    """The upstream's bytes, each read bounded by the backend's timeouts (the first by
    ``first_byte``, the others by ``idle``): a backend whose stream breaks in a way the
    transport never reports (a malformed chunk size, with the connection left open) ends the
    stream with ``upstream_timeout`` instead of hanging the client. The transport's failures
    are mapped as ``failures.upstream_failure`` says (a malformed body is
    ``upstream_stream_broken``, a connection gone mid-body ``upstream_connection_error``)."""
    timeouts, name = route.backend.timeouts, route.backend_name
    limit, first = timeouts.first_byte, True
    while True:
        try:
            async with asyncio.timeout(limit):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            said = "sent nothing within" if first else "sent nothing more for"
            timeout = UpstreamTimeout(f"Backend '{name}' {said} {limit:g} s.")
            timeout.detail = f"no bytes read in {limit:g} s"
            raise timeout from exc
        except GatewayError:
            raise
        except Exception as exc:  # the transport's own, mapped by the library's exception
            raise upstream_failure(name, exc) from exc
        if chunk:  # (an empty read is not the first byte)
            first, limit = False, timeouts.idle
        yield chunk


#: a delta's generated texts, any of which may carry a key split across frames (a path in
#: the delta: its top-level texts, an audio's transcript, a tool call's and the legacy
#: function call's arguments)
_TEXTS = ("content", "refusal", "reasoning_content", "reasoning")
Path = tuple[Any, ...]  # (choice index, then the text's place in its delta)


class _Held:
    """Per choice and per text of its delta, the end that could begin the backend's key: held
    back until the next piece of that text shows whether it does (so a key split across frames
    is scrubbed whole, in the content, a refusal, reasoning or a tool call's arguments)."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]
        self.held: dict[Path, str] = {}
        self.head: dict[str, Any] = {}
        self.like: dict[Path, dict[str, Any]] = {}  # a held Responses text's last delta
        # keys JSON writes as they are: an event's raw text then shows whether it may hold
        self._plain = all(json.dumps(s)[1:-1] == s for s in self.secrets)
        self._longest = max((len(s) for s in self.secrets), default=0)

    def may_hold(self, data: str) -> bool:
        """Whether the event needs reading: something is held back, or one of its strings ends
        with what could begin a key (most events do not: they pass untouched, unparsed). Every
        unescaped quote not followed by a colon may end a string value: its text before is
        checked (a superset of the values' ends: some events are read for nothing)."""
        if self.held or not self._plain:
            return True
        quote = data.find('"', max(0, data.find('"choices"')))
        while quote != -1:
            ends = not _escaped(data, quote) and data[quote + 1 : quote + 2] != ":"
            if ends and _partial_tail(data[max(0, quote - self._longest) : quote], self.secrets):
                return True
            quote = data.find('"', quote + 1)
        return False

    def text(self, path: Path, content: str, final: bool) -> str:
        text = self.held.pop(path, "") + content
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        keep = 0 if final else _partial_tail(text, self.secrets)
        if keep:
            self.held[path], text = text[-keep:], text[:-keep]
        return text

    def events(self, event: Event, redacted: bool = False) -> list[Event]:
        """The event with its texts' held ends taken out (and earlier ones put back); a choice
        whose text was held back or redacted (``redacted``: the event's raw text held a key)
        loses its logprobs, whose tokens would spell the key in pieces. A Responses event is
        read by ``responses``."""
        try:
            chunk = json.loads(event.data or "")
        except ValueError:
            return [event]
        if not isinstance(chunk, dict):
            return [event]
        if isinstance(chunk.get("type"), str) and "choices" not in chunk:
            return self.responses(chunk, event, redacted)
        if not isinstance(chunk.get("choices"), list):
            return [event]
        self.head = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
        changed = False
        for choice in chunk["choices"]:
            changed = self._choice(choice, redacted) or changed
        if not changed:
            return [event]
        return [_event(chunk, event.event)]

    def responses(self, chunk: dict[str, Any], event: Event, redacted: bool) -> list[Event]:
        """A Responses stream's event: a text delta (``_DELTAS``) has its held end taken out,
        and the held end goes out as a delta of its own before the event that ends that text
        (its ``.done``, its item's ``output_item.done``, the Response's end)."""
        kind, delta = chunk["type"], chunk.get("delta")
        if kind in _DELTAS and isinstance(delta, str):
            path = _responses_path(kind, chunk)
            self.like[path] = {k: chunk[k] for k in _WHERE if k in chunk}
            released = self.text(path, delta, final=False)
            if released == delta and not redacted:
                return [event]
            if not released:
                return []
            chunk["delta"] = released
            if chunk.get("logprobs"):
                chunk["logprobs"] = []
            return [_event(chunk, event.event)]
        ended = [p for p in self.held if p[0] == _RESPONSES and _ends(kind, chunk, p)]
        return [*(self._held_delta(p, self.held.pop(p)) for p in ended), event]

    def _held_delta(self, path: Path, text: str) -> Event:
        like = self.like.pop(path, {"type": path[1]})
        chunk = {**like, "delta": text}
        if path[1] == "response.output_text.delta":
            chunk["logprobs"] = []
        return _event(chunk, path[1])

    def _choice(self, choice: Any, redacted: bool) -> bool:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
            return False
        index, delta = choice.get("index", 0), choice["delta"]
        final, changed = bool(choice.get("finish_reason")), redacted
        for path, given in _texts(delta):
            released = self.text((index, *path), given, final)
            if released != given:
                _put(delta, path, released)
                changed = True
        if final:  # the choice ends: what its other texts still hold goes with it
            for key in [k for k in self.held if k[0] == index]:
                _put(delta, key[1:], self.held.pop(key))
                changed = True
        if changed and choice.get("logprobs") is not None:
            choice["logprobs"] = None
        return changed

    def rest(self) -> list[Event]:
        """What is still held when the stream ends without finishing those choices (or those
        Responses texts)."""
        out = [self._held_delta(p, self.held.pop(p)) for p in list(self.held) if p[0] == _RESPONSES]
        if not self.held:
            return out
        deltas: dict[Any, dict[str, Any]] = {}
        for (index, *path), text in self.held.items():
            _put(deltas.setdefault(index, {}), tuple(path), text)
        self.held = {}
        choices = [
            {"index": i, "delta": delta, "logprobs": None, "finish_reason": None}
            for i, delta in deltas.items()
        ]
        return [*out, _event({**self.head, "choices": choices}, None)]


def _event(chunk: dict[str, Any], name: str | None) -> Event:
    data = json.dumps(chunk)
    head = f"event: {name}\n" if name else ""
    return Event(raw=f"{head}data: {data}\n\n".encode(), data=data, event=name)


#: a Responses stream's text deltas, each with the event that ends its text
_DELTAS = {
    "response.output_text.delta": "response.output_text.done",
    "response.refusal.delta": "response.refusal.done",
    "response.function_call_arguments.delta": "response.function_call_arguments.done",
    "response.reasoning_text.delta": "response.reasoning_text.done",
    "response.reasoning_summary_text.delta": "response.reasoning_summary_text.done",
    "response.custom_tool_call_input.delta": "response.custom_tool_call_input.done",
}
_WHERE = ("type", "item_id", "output_index", "content_index", "summary_index", "sequence_number")
_ENDS_ALL = ("response.completed", "response.incomplete", "response.failed", "error")
_RESPONSES = "responses"  # a held Responses text's path begins with this


def _responses_path(kind: str, chunk: dict[str, Any]) -> Path:
    part = chunk.get("content_index", chunk.get("summary_index", 0))
    return (_RESPONSES, kind, chunk.get("output_index", 0), part)


def _ends(kind: str, chunk: dict[str, Any], path: Path) -> bool:
    """Whether the event ends the held text at ``path``."""
    if kind in _ENDS_ALL:
        return True
    at = chunk.get("output_index", 0)
    if kind == "response.output_item.done":
        return bool(path[2] == at)
    if _DELTAS[path[1]] != kind:
        return False
    return _responses_path(path[1], chunk) == path


def _texts(delta: dict[str, Any]) -> list[tuple[Path, str]]:
    """The delta's texts a key may be split across, each with its place in the delta."""
    found: list[tuple[Path, str]] = [
        ((name,), delta[name]) for name in _TEXTS if isinstance(delta.get(name), str)
    ]
    calls = delta.get("tool_calls")
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            path = ("tool_calls", call.get("index", position), "arguments")
            found.append((path, function["arguments"]))
    audio = delta.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
        found.append((("audio", "transcript"), audio["transcript"]))
    legacy = delta.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        found.append((("function_call", "arguments"), legacy["arguments"]))
    return found


def _put(delta: dict[str, Any], path: Path, text: str) -> None:
    """Set the text at ``path`` in ``delta``, making the place for it if the delta lacks it (a
    tool call's arguments go to the call of that index, as the clients merge them)."""
    if len(path) == 1:
        delta[path[0]] = text
    elif path[0] in ("function_call", "audio"):
        delta.setdefault(path[0], {})[path[1]] = text
    else:
        calls = delta.setdefault("tool_calls", [])
        for position, call in enumerate(calls):
            if isinstance(call, dict) and call.get("index", position) == path[1]:
                call.setdefault("function", {})["arguments"] = text
                return
        calls.append({"index": path[1], "function": {"arguments": text}})


def _escaped(data: str, quote: int) -> bool:
    """Whether the quote at ``quote`` is escaped (an odd run of backslashes before it)."""
    run = 0
    while quote - run > 0 and data[quote - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _partial_tail(text: str, secrets: list[str]) -> int:
    """The length of the longest end of ``text`` that is a proper beginning of a secret."""
    best = 0
    for secret in secrets:
        start = max(0, len(text) - len(secret) + 1)
        while (at := text.find(secret[0], start)) != -1:
            if secret.startswith(text[at:]):
                best = max(best, len(text) - at)
                break
            start = at + 1
    return best


async def scrubbed(frames: AsyncIterator[Event], upstream: UpstreamClient) -> AsyncIterator[Event]:
    """The backend's key never comes back, even inside an error frame of a 200 stream, or
    split across two frames' text."""
    held = _Held(upstream.secret_texts())
    async for event in frames:
        redacted = upstream.holds_secret(event.raw)
        if redacted:
            event = parse_event(upstream.scrub(event.raw).removesuffix(b"\n\n"))
        if held.secrets and event.data and event.data.startswith("{"):
            if redacted or held.may_hold(event.data):
                for one in held.events(event, redacted):
                    yield one
                continue
        elif event.done:
            for one in held.rest():
                yield one
        yield event
    for one in held.rest():  # the stream ended with neither [DONE] nor finish
        yield one


async def first_event(route: Route, frames: AsyncIterator[Event]) -> Event:
    timeout = route.backend.timeouts.first_byte
    try:
        async with asyncio.timeout(timeout):
            with mapped_errors(route):
                first = await anext(frames)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"Backend '{route.backend_name}' sent nothing within {timeout:g} s."
        ) from exc
    except StopAsyncIteration as exc:
        raise UpstreamError(f"Backend '{route.backend_name}' ended the stream at once.") from exc
    error = error_in(first)
    if error is not None:  # scrubbed of the key already (``scrubbed``)
        raise error_event_failure(route.backend_name, error)
    return first


def error_in(event: Event) -> str | None:
    if event.event == "error" or (event.data and event.data.startswith('{"error"')):
        return event.data or "error event"  # whole: a cut event would not parse
    return None
