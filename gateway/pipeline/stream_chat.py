"""A chat completion stream's frames (``stream.Frames``): each upstream chunk through the output
stage (hold-back, redaction, blocks), usage the gateway asked for taken out again, and the
assembled answer to the record. A legacy completion stream (``/v1/completions``) is the same
with its text in ``choices[].text`` (``COMPLETION``'s ``Shape``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from gateway.errors import GatewayError, UpstreamError
from gateway.pipeline.assemble import StreamAssembler
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import Blocked, OutputStage
from gateway.pipeline.stages.respond import upstream_filtered
from gateway.pipeline.stream import Ending, shutdown_frame
from gateway.pipeline.stream_events import OwnFrames, comment_only, error_frame, frame
from gateway.pipeline.tools_stream import ToolStream
from gateway.policy.compiled import CompiledRule
from gateway.policy.tools import CALLED
from gateway.records.status import Status
from gateway.upstream.sse import Event

_DONE = b"data: [DONE]\n\n"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Shape:
    """Where a stream's chunks carry their text: a chat chunk's ``choices[].delta.content``,
    or a legacy completion chunk's ``choices[].text``."""

    object: str
    in_delta: bool

    def text(self, choice: dict[str, Any]) -> Any:
        if self.in_delta:
            return (choice.get("delta") or {}).get("content")
        return choice.get("text")

    def with_text(self, choice: dict[str, Any], text: str) -> dict[str, Any]:
        """A copy of the choice carrying ``text`` as its new text."""
        if self.in_delta:
            return {**choice, "delta": {**(choice.get("delta") or {}), "content": text}}
        return {**choice, "text": text}

    def choice(self, index: int, text: str | None, finish_reason: str | None) -> dict[str, Any]:
        """A choice the gateway writes itself (a refusal, held-back text, a block's end)."""
        ended = {"logprobs": None, "finish_reason": finish_reason}
        if self.in_delta:
            return {"index": index, "delta": {} if text is None else {"content": text}, **ended}
        return {"index": index, "text": text or "", **ended}


CHAT = Shape("chat.completion.chunk", in_delta=True)
COMPLETION = Shape("text_completion", in_delta=False)


class ChatFrames:
    """What a chat completion stream's upstream events become on the wire."""

    def __init__(
        self,
        services: PipelineNeeds,
        ending: Ending,
        *,
        strip_usage: bool,
        output: OutputStage | None,
        choices: int = 1,
        heavy: bool = False,
        shape: Shape = CHAT,
        assembler: StreamAssembler | None = None,
        tools: ToolStream | None = None,
    ) -> None:
        self._s = services
        self._shape = shape
        self._ending = ending
        # the output stage runs a model: its work runs in the detector pool, off the loop,
        # whenever a model is due to read the text
        self._heavy = heavy
        self._output = output
        self._blocked: CompiledRule | None = None
        self._choices = choices
        self._refused: dict[int, str] = {}  # choice → the rule whose refusal ended it
        self._strip_usage = strip_usage
        self._assembler = assembler or StreamAssembler()
        self._tools = tools  # the tool calls' scope (``tools_stream``), when the policy has one
        self._own = OwnFrames()

    def _end(self, status: Status, error_type: str | None, message: str | None) -> None:
        self._ending.end(status, error_type, message)

    def upstream_ended(self) -> Event | None:
        if not self._assembler.finished:
            self._end(Status.INCOMPLETE, "upstream_ended", "the backend ended the stream early")
            return None
        # Every choice finished but the backend sent no [DONE]: end the stream properly.
        return Event(raw=_DONE, data="[DONE]")

    def error(self, exc: GatewayError) -> bytes:
        return self._own.made(error_frame(exc))

    def shutdown(self) -> bytes:
        return shutdown_frame()

    def close(self, log: ExchangeRecord) -> None:
        if self._tools is not None:
            self._tools.close()
        if self._output is not None:
            self._output.close(self._blocked)
        log.response_body = self._assembler.body()
        log.response_model = self._assembler.head.get("model")
        log.take_usage(self._assembler.usage)

    async def frame(self, event: Event) -> bytes:
        """The bytes to forward for one upstream event (possibly none)."""
        if event.done:
            return await self._done(event)
        if self._own.mine(event):
            return event.raw  # the gateway's own frame (an error mid-stream)
        if event.data is None and comment_only(event):
            return b""
        try:
            chunk = json.loads(event.data or "")  # no data at all is malformed too
        except ValueError:
            exc = UpstreamError(
                "The backend sent a malformed chunk.", code="upstream_malformed_chunk"
            )
            said = event.raw.decode(errors="replace")[:200]
            self._end(Status.UPSTREAM_ERROR, exc.code, f"malformed chunk: {said}")
            return error_frame(exc)
        if not isinstance(chunk, dict) or "error" in chunk or event.event == "error":
            self._end(Status.UPSTREAM_ERROR, "upstream_stream_error", (event.data or "")[:2000])
            return event.raw
        self._assembler.add(chunk)
        changed = self._strip(chunk) if self._strip_usage else False
        if self._tools is not None:
            changed = self._tools.take(chunk) or changed
        if self._output is not None:
            return await self._output_frame(chunk)
        if not changed:
            return event.raw
        return frame(chunk) if chunk.get("choices") or chunk.get("usage") else b""

    async def _done(self, event: Event) -> bytes:
        """``[DONE]``: text still held, then calls still held (but for a refused choice's),
        and the record told how it ended, the dropped calls counted."""
        try:
            flushed = await self._off_loop(self._flush)
        except Blocked as blocked:  # a heavy rule's last scan, at the end
            return self._block(blocked.rule)
        except GatewayError as failed:  # a check failed closed at the end
            self._end(Status.GATEWAY_ERROR, failed.code or failed.type, failed.message)
            return error_frame(failed)
        rest = self._tools_rest()
        self._settle()
        return flushed + rest + event.raw

    async def _off_loop(self, work: Callable[[], T], *, models: bool = True) -> T:
        """The output stage's work: in the detector pool when it may run a model, else here."""
        return await self._s.detectors.evaluate(self._heavy and models, work)

    def _models_due(self, chunk: dict[str, Any]) -> bool:
        """Whether the chunk's text makes a model read: only then does it leave the loop."""
        assert self._output is not None
        for choice in chunk.get("choices") or ():
            text = self._shape.text(choice)
            text = text if isinstance(text, str) else ""
            final = bool(choice.get("finish_reason"))
            if self._output.models_due(choice.get("index", 0), text, final=final):
                return True
        return False

    async def _output_frame(self, chunk: dict[str, Any]) -> bytes:
        try:
            models = self._heavy and self._models_due(chunk)
            await self._off_loop(partial(self._released, chunk), models=models)
        except Blocked as blocked:
            return self._block(blocked.rule)
        except GatewayError as exc:  # a check failed closed mid-stream
            self._end(Status.GATEWAY_ERROR, exc.code or exc.type, exc.message)
            return error_frame(exc)
        if self._refused and len(self._refused) >= self._choices:
            # Every choice was refused: nothing more of the backend's will be sent, so stop it.
            self._settle()
            return frame(chunk) + _DONE
        return frame(chunk) if chunk.get("choices") or chunk.get("usage") else b""

    def _strip(self, chunk: dict[str, Any]) -> bool:
        """Usage the gateway asked for on the client's behalf does not reach the client."""
        if "usage" not in chunk:
            return False
        del chunk["usage"]
        return True

    def _released(self, chunk: dict[str, Any]) -> None:
        """Replace each choice's new text by what the output stage releases; drop empty
        choices."""
        kept = []
        for choice in chunk.get("choices") or ():
            released = self._released_choice(choice)
            if released is not None:
                kept.append(released)
        chunk["choices"] = kept

    def _released_choice(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        assert self._output is not None
        index = choice.get("index", 0)
        if self._output.refused(index):
            return None  # the rest of a refused choice is the backend's, never shown
        text = self._shape.text(choice)
        try:
            released = self._output.feed(index, text) if isinstance(text, str) and text else ""
            if choice.get("finish_reason"):  # a heavy rule's last scan may block here
                released += self._output.finish(index)
        except Blocked as blocked:
            return self._refusal(index, blocked)
        if released or text is not None:
            choice = self._shape.with_text(choice, released)
        if released or choice.get("finish_reason") or self._carries_more(choice):
            # Released text no longer lines up with the upstream chunk's token logprobs,
            # which could also spell out held-back or redacted text.
            return {**choice, "logprobs": None}
        return None

    def _carries_more(self, choice: dict[str, Any]) -> bool:
        """Whether a choice says something besides its text (a role, a tool call)."""
        if not self._shape.in_delta:
            return False
        return bool(set(choice.get("delta") or {}) - {"content"})

    def _refusal(self, index: int, blocked: Blocked) -> dict[str, Any]:
        """A block that answers ends its choice with the rule's refusal; one that errs raises."""
        assert self._output is not None
        refusal = self._output.refuse(index, blocked.rule)
        if refusal is None:
            raise blocked
        self._refused[index] = blocked.rule.id
        return self._shape.choice(index, refusal, "content_filter")

    def _flush(self) -> bytes:
        """Text still held back when the stream ends without a finish chunk (or the refusal
        of a rule whose last scan blocks it). Raises Blocked for a block that errs."""
        if self._output is None:
            return b""
        choices: list[dict[str, Any]] = []
        for i in self._output.unfinished():
            try:
                rest = self._output.finish(i)
            except Blocked as blocked:
                choices.append(self._refusal(i, blocked))
                continue
            if rest:
                choices.append(self._shape.choice(i, rest, None))
        return frame(self._chunk(choices)) if choices else b""

    def _tools_rest(self) -> bytes:
        """Calls still held when the stream ends without their choice's finish_reason."""
        if self._tools is None:
            return b""
        refused = set(self._refused)
        rest = self._tools.rest(skip=lambda i: i in refused)
        return frame(self._chunk(rest)) if rest else b""

    def _block(self, rule: CompiledRule) -> bytes:
        """A block that errs, mid-stream: content_filter on every choice left, then [DONE]."""
        assert self._output is not None
        self._blocked = rule
        self._end(Status.BLOCKED, "policy_violation", f"output blocked by rule '{rule.id}'")
        indices = self._output.unfinished() or [0]
        choices = [self._shape.choice(i, None, "content_filter") for i in indices]
        return frame(self._chunk(choices)) + _DONE

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        head = self._assembler.head
        return {
            "id": head.get("id"),
            "object": self._shape.object,
            "created": head.get("created"),
            "model": head.get("model"),
            "choices": choices,
        }

    def _settle(self) -> None:
        """The stream ended as it should: whose, if anyone's, content_filter ended a choice."""
        blocked = set(self._refused.values())
        if self._tools is not None and self._tools.blocked:
            blocked.add(CALLED)
        if blocked:
            rules = ", ".join(sorted(blocked))
            self._end(Status.BLOCKED, "policy_violation", f"output blocked by rule '{rules}'")
        elif (filtered := upstream_filtered(self._assembler.body()["choices"])) is not None:
            self._end(Status.UPSTREAM_FILTERED, "upstream_content_filter", filtered)
        elif not self._assembler.finished:  # llama-cpp-python cuts streams short this way
            self._end(Status.INCOMPLETE, "upstream_ended", "[DONE] before every choice finished")
        else:
            self._end(Status.OK, None, None)
