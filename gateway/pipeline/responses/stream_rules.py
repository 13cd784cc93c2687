"""The policy over a Responses stream's events, whichever backend made them (``stream.py``).

``Governed.process`` takes one event as the backend sent it (or as ``events.ChatEvents``
translated it) and returns what the client is sent for it, unnumbered:

- text: each ``output_text`` part is one of the output stage's choices (the k-th part of the
  answer is index k, as the chat view of a record numbers its choices); a
  ``response.output_text.delta`` carries what the stage releases (none: the event is held), and
  the ``.done``, ``content_part.done`` and ``output_item.done`` events, and the terminal
  Response, carry the released text instead of the backend's;
- tool calls: each call item (``function_call``, ``custom_tool_call`` with its ``input``,
  ``mcp_call``) is judged by ``ToolScope.call`` once it is whole; when the scope blocks calls
  its events are held until then, and a call out of scope never reaches the client (the
  client's ``output_index`` has no gap for it, and nothing more of its item goes out);
- a text delta no ``content_part.added`` announced is tracked from that delta on, through the
  output stage like any other;
- a block raises ``Ended`` with the events that end the stream: the rule's refusal as the
  part's text then ``response.incomplete`` (``block_as: answer``), or ``error`` and
  ``response.failed`` (a block that errs, a check that failed closed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from gateway.errors import GatewayError
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import Blocked, OutputStage
from gateway.pipeline.responses.events import TERMINAL, new_id, spec_fields
from gateway.policy.compiled import CompiledRule
from gateway.policy.tools import ToolScope, ToolVerdict
from gateway.records.status import Status

T = TypeVar("T")
Events = list[dict[str, Any]]
#: the output items that are a model's calls, and the field that holds what each call says
CALLS = {"function_call": "arguments", "custom_tool_call": "input", "mcp_call": "arguments"}


class Ended(Exception):
    """The stream ends here: the events to send, and how the record says it ended."""

    def __init__(self, events: Events, status: Status, code: str, message: str) -> None:
        super().__init__(message)
        self.events, self.status, self.code, self.message = events, status, code, message


@dataclass(slots=True)
class _Part:
    """An ``output_text`` part: its index in the output stage, and what was released of it."""

    stage: int
    released: list[str] = field(default_factory=list)
    fed: bool = False  # the output stage had some of its text

    @property
    def text(self) -> str:
        return "".join(self.released)


def failed(response: dict[str, Any], output: Events, code: str, message: str) -> Events:
    """An ``error`` event with the gateway's code, then ``response.failed`` (whose error code is
    one of the spec's: ``invalid_prompt`` for a policy's block, else ``server_error``)."""
    spec_code = "invalid_prompt" if code == "policy_violation" else "server_error"
    body = {**response, "status": "failed", "output": output,
            "error": {"code": spec_code, "message": message}}
    return [
        {"type": "error", "code": code, "message": message, "param": None},
        {"type": "response.failed", "response": body},
    ]


class Governed:
    """What the client sees of one Responses stream (see the module's doc)."""

    def __init__(
        self,
        services: PipelineNeeds,
        output: OutputStage | None,
        tools: ToolScope,
        *,
        heavy: bool,
    ) -> None:
        self._s = services
        self._output = output
        self._tools = tools
        self._heavy = heavy
        self.response: dict[str, Any] = {}  # the Response as response.created gave it
        self.output: Events = []  # the client's output items, in its order
        self._index: dict[int, int] = {}  # the backend's output_index → the client's
        self._parts: dict[tuple[int, int], _Part] = {}
        self._held: dict[int, Events] = {}  # a call held until it is judged
        self._dropped: set[int] = set()  # the backend's output_index of each call dropped
        self.verdicts: list[tuple[int, ToolVerdict]] = []
        self.blocked_calls = 0
        self.blocked: CompiledRule | None = None  # a block that erred (for the stage's close)

    async def process(self, event: dict[str, Any]) -> Events:
        kind = event.get("type")
        at = event.get("output_index")
        if kind in ("response.created", "response.in_progress"):
            self.response = {**self.response, **spec_fields(event.get("response") or {})}
            return [event]
        if isinstance(at, int) and (at in self._held or at in self._dropped):
            return self._hold(at, event)
        if kind == "response.output_item.added":
            return self._added(event)
        if kind == "response.content_part.added":
            return self._part_added(event)
        if kind == "response.output_text.delta":
            return await self._delta(event)
        if kind == "response.output_text.done":
            return await self._text_done(event)
        if kind == "response.content_part.done":
            return [self._mapped({**event, "part": self._released_part(event)})]
        if kind == "response.output_item.done":
            return self._item_done(event)
        if kind in TERMINAL:
            return await self._terminal(event)
        return [self._mapped(event)] if isinstance(at, int) else [event]

    # Items and their numbering.

    def _mapped(self, event: dict[str, Any]) -> dict[str, Any]:
        at = event.get("output_index")
        if isinstance(at, int) and at in self._index:
            return {**event, "output_index": self._index[at]}
        return event

    def _added(self, event: dict[str, Any]) -> Events:
        item = event.get("item") or {}
        at = event.get("output_index")
        if item.get("type") in CALLS and self._tools.blocks_calls and isinstance(at, int):
            self._held[at] = [event]
            return []
        if isinstance(at, int):
            self._index[at] = len(self.output)
        self.output.append(copy.deepcopy(item))
        return [self._mapped(event)]

    def _hold(self, at: int, event: dict[str, Any]) -> Events:
        if at in self._dropped:
            return []  # more of a call out of scope (a backend that still speaks of it)
        held = self._held[at]
        held.append(event)
        if event.get("type") != "response.output_item.done":
            return []
        del self._held[at]
        item = event.get("item") or {}
        verdict = self._judge(item)
        if not verdict.allowed:
            self.blocked_calls += 1
            self._dropped.add(at)
            return []
        self._index[at] = len(self.output)
        self.output.append(copy.deepcopy(item))
        return [self._mapped(e) for e in held]

    def _judge(self, item: dict[str, Any]) -> ToolVerdict:
        said = item.get(CALLS.get(str(item.get("type")), "arguments"))
        verdict = self._tools.call(str(item.get("name") or ""), said)
        self.verdicts.append((len(self.verdicts), verdict))
        return verdict

    def _item_done(self, event: dict[str, Any]) -> Events:
        at = event.get("output_index")
        item = copy.deepcopy(event.get("item") or {})
        if item.get("type") in CALLS:
            self._judge(item)  # passed as it came (the scope flags or warns)
        elif item.get("type") == "message" and isinstance(at, int):
            for n, part in enumerate(item.get("content") or ()):
                if (at, n) in self._parts and isinstance(part, dict):
                    item["content"][n] = self._with_text(part, self._parts[(at, n)].text)
        if isinstance(at, int) and at in self._index:
            self.output[self._index[at]] = item
        return [self._mapped({**event, "item": item})]

    # Text, through the output stage.

    def _part_added(self, event: dict[str, Any]) -> Events:
        at, n = event.get("output_index"), event.get("content_index", 0)
        part = event.get("part") or {}
        if part.get("type") == "output_text" and isinstance(at, int) and isinstance(n, int):
            self._parts[(at, n)] = _Part(len(self._parts))
        return [self._mapped(event)]

    def _part_of(self, event: dict[str, Any]) -> _Part | None:
        """The text part an event is of; one no ``content_part.added`` announced is tracked
        from its first event on (else its text would pass unread)."""
        at, n = event.get("output_index"), event.get("content_index", 0)
        if not isinstance(at, int) or not isinstance(n, int):
            return None
        if (at, n) not in self._parts:
            self._parts[(at, n)] = _Part(len(self._parts))
        return self._parts[(at, n)]

    def _released_part(self, event: dict[str, Any]) -> Any:
        part = event.get("part")
        if not isinstance(part, dict) or part.get("type") != "output_text":
            return part
        tracked = self._part_of(event)
        if tracked is None or self._output is None:
            return part
        return self._with_text(part, tracked.text)

    def _with_text(self, part: dict[str, Any], text: str) -> dict[str, Any]:
        if self._output is None:
            return part
        return {**part, "text": text, "logprobs": []}

    async def _off_loop(self, work: Callable[[], T], models: bool) -> T:
        return await self._s.detectors.evaluate(self._heavy and models, work)

    async def _delta(self, event: dict[str, Any]) -> Events:
        part, delta = self._part_of(event), event.get("delta")
        if part is None or not isinstance(delta, str):
            return [self._mapped(event)]
        if self._output is None:
            part.released.append(delta)
            return [self._mapped(event)]
        released = await self._stage(part, event, delta, final=False)
        return [self._text_delta(event, released)] if released else []

    async def _text_done(self, event: dict[str, Any]) -> Events:
        part = self._part_of(event)
        if part is None:
            return [self._mapped(event)]
        if self._output is None:
            return [self._mapped(event)]
        said = event.get("text") if not part.fed else ""  # a text no delta streamed
        rest = await self._stage(part, event, said if isinstance(said, str) else "", final=True)
        out = [self._text_delta(event, rest)] if rest else []
        return [*out, self._mapped({**event, "text": part.text, "logprobs": []})]

    def _text_delta(self, like: dict[str, Any], text: str) -> dict[str, Any]:
        return self._mapped(
            {"type": "response.output_text.delta", "item_id": like.get("item_id"),
             "output_index": like.get("output_index"),
             "content_index": like.get("content_index", 0), "delta": text, "logprobs": []}
        )

    async def _stage(self, part: _Part, event: dict[str, Any], text: str, *, final: bool) -> str:
        """Feed the part's new text (and finish it, if ``final``); what is released."""
        stage = self._output
        assert stage is not None
        part.fed = True
        models = self._heavy and stage.models_due(part.stage, text, final=final)
        try:
            released = await self._off_loop(partial(self._feed, part.stage, text, final), models)
        except Blocked as blocked:
            raise self._block(part, event, blocked.rule) from None
        except GatewayError as exc:  # a check failed closed
            code = exc.code or exc.type
            events = self.fail(code, exc.message)
            raise Ended(events, Status.GATEWAY_ERROR, code, exc.message) from None
        part.released.append(released)
        return released

    def _feed(self, index: int, text: str, final: bool) -> str:
        assert self._output is not None
        released = self._output.feed(index, text) if text else ""
        return released + self._output.finish(index) if final else released

    def _block(self, part: _Part, event: dict[str, Any], rule: CompiledRule) -> Ended:
        assert self._output is not None
        message = f"output blocked by rule '{rule.id}'"
        refusal = self._output.refuse(part.stage, rule)
        if refusal is None:
            self.blocked = rule
            said = "The answer was blocked by the deployment's policy."
            events = self.fail("policy_violation", said)
            return Ended(events, Status.BLOCKED, "policy_violation", message)
        part.released.append(refusal)
        out = [self._text_delta(event, refusal)]
        out += self._close_message(event, part)
        response = {**self.response, "status": "incomplete", "output": self.output,
                    "incomplete_details": {"reason": "content_filter"}, "error": None}
        out.append({"type": "response.incomplete", "response": response})
        return Ended(out, Status.BLOCKED, "policy_violation", message)

    def _close_message(self, event: dict[str, Any], part: _Part) -> Events:
        """The done events of a message whose part a refusal ended."""
        at = event.get("output_index")
        where = {k: event.get(k) for k in ("item_id", "output_index", "content_index")}
        text_part = {"type": "output_text", "text": part.text, "annotations": [], "logprobs": []}
        client = self._index.get(at) if isinstance(at, int) else None
        item: dict[str, Any] = {"id": event.get("item_id"), "type": "message",
                                "role": "assistant", "content": []}
        if client is not None:
            item = {**self.output[client], "status": "incomplete"}
            content = [c for c in item.get("content") or () if isinstance(c, dict)]
            n = where["content_index"] if isinstance(where["content_index"], int) else 0
            item["content"] = [*content[:n], text_part]
            self.output[client] = item
        return [
            self._mapped({"type": "response.output_text.done", **where, "text": part.text,
                          "logprobs": []}),
            self._mapped({"type": "response.content_part.done", **where, "part": text_part}),
            self._mapped({"type": "response.output_item.done", "output_index": at, "item": item}),
        ]

    # The end.

    def fail(self, code: str, message: str) -> Events:
        return failed(self.response, self.output, code, message)

    async def _terminal(self, event: dict[str, Any]) -> Events:
        out: Events = []
        for at, part in list(self._parts.items()):  # text a backend never said was done
            if self._output is not None and part.stage in self._output.unfinished():
                like = {"item_id": None, "output_index": at[0], "content_index": at[1]}
                rest = await self._stage(part, like, "", final=True)
                out += [self._text_delta(like, rest)] if rest else []
        out += self._tool_refusal()
        response = {**(event.get("response") or {}), "output": self.output}
        return [*out, {**event, "response": response}]

    def _tool_refusal(self) -> Events:
        """When calls were blocked and nothing else was said: a message with the tool scope's
        refusal, streamed as a message is."""
        refusal = self._tools.refusal
        if not self.blocked_calls or not refusal:
            return []
        if any(item.get("type") == "message" for item in self.output):
            return []
        at = len(self.output)
        part = {"type": "output_text", "text": refusal, "annotations": [], "logprobs": []}
        item: dict[str, Any] = {"id": new_id("msg"), "type": "message", "status": "in_progress",
                                "role": "assistant", "content": []}
        where = {"item_id": item["id"], "output_index": at, "content_index": 0}
        empty = {**part, "text": ""}
        done = {**item, "status": "completed", "content": [part]}
        self.output.append(done)
        return [
            {"type": "response.output_item.added", "output_index": at, "item": item},
            {"type": "response.content_part.added", **where, "part": empty},
            {"type": "response.output_text.delta", **where, "delta": refusal, "logprobs": []},
            {"type": "response.output_text.done", **where, "text": refusal, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": part},
            {"type": "response.output_item.done", "output_index": at, "item": done},
        ]
