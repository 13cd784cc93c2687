"""Tool-call scope on chat completion streams (``policy.tools``, judged by ``ToolScope``).

A call streams as pieces: its index, id, type and name first, then its arguments in several
deltas, which may interleave with another call's (a backend streaming parallel calls). A call
is whole only when the choice's ``finish_reason`` arrives, or when the stream ends: then each
of the choice's calls is judged, in the order they started.

- ``on_call: block``: the pieces are held back per (choice, call index). A whole call in
  scope is released as ONE delta carrying its index, id, type, name and whole arguments (the
  indices renumbered so the client sees 0, 1, ... with no gaps); one out of scope is dropped
  and never reaches the client. A choice whose every call was dropped ends with the policy's
  refusal as content and ``finish_reason: content_filter``.
- ``flag`` and ``warn``: nothing is held or changed; each call is judged when whole.

Every verdict goes on the decision once the stream ends (``ToolScope.note_calls``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.decision import Decision
from gateway.policy.tools import ToolScope, ToolVerdict

LEGACY = -1  # the call index of a legacy ``function_call`` (one per choice, no index)


@dataclass(slots=True)
class _Call:
    index: int
    id: Any = None
    type: Any = None
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)

    def add(self, piece: dict[str, Any]) -> None:
        self.id = piece.get("id") or self.id
        self.type = piece.get("type") or self.type
        function = piece.get("function") if self.index != LEGACY else piece
        if isinstance(function, dict):
            for part, into in (("name", self.name), ("arguments", self.arguments)):
                if isinstance(function.get(part), str):
                    into.append(function[part])

    def whole(self, index: int) -> dict[str, Any]:
        """The call as one delta (at the client's ``index``)."""
        function = {"name": "".join(self.name), "arguments": "".join(self.arguments)}
        if self.index == LEGACY:
            return function
        kind = self.type or "function"
        return {"index": index, "id": self.id, "type": kind, "function": function}


@dataclass(slots=True)
class _Choice:
    open: dict[int, _Call] = field(default_factory=dict)  # call index → the call, in order
    released: int = 0
    dropped: int = 0
    texted: bool = False  # the choice sent text of its own
    ended: bool = False  # its finish_reason (or the refusal) was sent


class ToolStream:
    """One stream's tool calls: ``take`` each chunk before it goes on (in place), ``rest`` at
    its end, ``close`` to put the verdicts on the decision."""

    def __init__(self, scope: ToolScope, decision: Decision) -> None:
        self._scope = scope
        self._decision = decision
        self._hold = scope.blocks_calls
        self._choices: dict[int, _Choice] = {}
        self._verdicts: list[tuple[int, ToolVerdict]] = []

    @property
    def blocked(self) -> bool:
        """Whether a call was taken out of the stream."""
        return any(choice.dropped for choice in self._choices.values())

    def take(self, chunk: dict[str, Any]) -> bool:
        """Each choice's call pieces held (or only watched); what became whole and is in scope
        released in their place. A choice left saying nothing is taken out of the chunk.
        True when the chunk may have changed (calls are held)."""
        kept = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or self._take(choice):
                kept.append(choice)
        if self._hold and "choices" in chunk:
            chunk["choices"] = kept
        return self._hold

    def rest(self, skip: Callable[[int], bool] = lambda _: False) -> list[dict[str, Any]]:
        """At the stream's end (no finish_reason came): the choices whose last call was still
        open, with it released, or with the refusal when every call of the choice was dropped.
        A choice ``skip`` names (one an output rule refused) releases nothing more."""
        ended = []
        for index, state in self._choices.items():
            if skip(index):
                state.open, state.ended = {}, True
                continue
            released = self._complete(index, state)
            if self._hold and not state.ended:
                choice: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": None}
                self._release(choice, state, released, final=True)
                if choice["delta"]:
                    ended.append(choice)
        return ended

    def close(self) -> None:
        self._scope.note_calls(self._decision, self._verdicts, enforced=True)

    def _take(self, choice: dict[str, Any]) -> bool:
        """One choice of a chunk; False when, held, it says nothing any more."""
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return True
        index = choice.get("index", 0)
        state = self._choices.setdefault(index, _Choice())
        state.texted = state.texted or bool(delta.get("content"))
        released = self._pieces(index, state, delta)
        final = choice.get("finish_reason") is not None
        if final:
            released += self._complete(index, state)
        if not self._hold:
            return True
        self._release(choice, state, released, final=final)
        return bool(delta) or final or bool(choice.get("logprobs"))

    def _pieces(self, index: int, state: _Choice, delta: dict[str, Any]) -> list[dict[str, Any]]:
        """The delta's call pieces into their calls (none is whole before its choice ends)."""
        pieces = [p for p in delta.get("tool_calls") or () if isinstance(p, dict)]
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            pieces.append({**legacy, "index": LEGACY})
        for piece in pieces:
            at = piece.get("index", 0)
            at = at if isinstance(at, int) else 0
            state.open.setdefault(at, _Call(at)).add(piece)
        if self._hold:
            delta.pop("tool_calls", None)
            delta.pop("function_call", None)
        return []

    def _complete(self, index: int, state: _Choice) -> list[dict[str, Any]]:
        """The choice's open calls are whole: each judged, in the order they started, and
        released (at its new index) or dropped."""
        calls, state.open = list(state.open.values()), {}
        released = []
        for call in calls:
            verdict = self._scope.call("".join(call.name), "".join(call.arguments))
            self._verdicts.append((index, verdict))
            if not verdict.allowed and self._hold:
                state.dropped += 1
                continue
            state.released += 1
            released.append(call.whole(state.released - 1))
        return released

    def _release(
        self, choice: dict[str, Any], state: _Choice, released: list[dict[str, Any]], *, final: bool
    ) -> None:
        """The released calls on the choice's delta; a choice that ends with every call
        dropped ends with the refusal (as its content when it sent no text of its own)."""
        delta = choice["delta"]
        calls = [c for c in released if "index" in c]
        if calls:
            delta["tool_calls"] = calls
        legacy = [c for c in released if "index" not in c]
        if legacy:
            delta["function_call"] = legacy[-1]
        if not final:
            return
        state.ended = True
        if state.dropped and not state.released:
            refusal = self._scope.refusal
            if not state.texted:
                delta["content"] = (delta.get("content") or "") + refusal
            delta["refusal"] = refusal
            choice["finish_reason"] = "content_filter"
