"""An exchange as a reviewer reads it: each message cut into segments at the spans rules found.

The record keeps the request as the user sent it and the answer as the model gave it; the
decision says, per rule, which spans (message, offsets) it found and what the gateway did. Here
the two are put together so that a template can mark every span without ever building HTML
itself: the segments are plain text, escaped when they are rendered.

A redacted record lists what it removed (``removed_from_record`` on its decision, at offsets
into the original like the evidence): the kept spans are moved by what each removal before
them changed in length, and each removed span is marked where its label stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from gateway.policy.actions import Action, Enforced, Stage
from gateway.policy.tools import CALLED
from gateway.records.views import text_at
from gateway.web.tools import ToolCall, Verdict, calls, on_choice, pretty, verdicts

_NOTHING_DONE = (Enforced.NONE, Action.ALLOW)


@dataclass(frozen=True, slots=True)
class Mark:
    rule: str
    label: str
    enforced: str

    @property
    def title(self) -> str:
        done = "" if self.enforced in _NOTHING_DONE else f", {self.enforced}"
        return f"{self.rule}: {self.label}{done}"


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    marks: tuple[Mark, ...] = ()

    @property
    def css(self) -> str:
        kinds = {m.enforced for m in self.marks}
        return "hl " + " ".join(sorted(f"hl-{k}" for k in kinds))

    @property
    def title(self) -> str:
        return "; ".join(m.title for m in self.marks)


@dataclass(slots=True)
class Part:
    segments: list[Segment] = field(default_factory=list)
    note: str | None = None  # a part that is not text (an image, an item), described
    call: ToolCall | None = None  # a tool call the message makes


@dataclass(slots=True)
class Message:
    role: str
    parts: list[Part]
    marks: int = 0
    #: a tool result: the id of the call it answers, and that call where the request has it
    answers_id: str | None = None
    answers: ToolCall | None = None


Span = tuple[int, int, Mark]


def segments(text: str, spans: list[Span]) -> list[Segment]:
    """Cut ``text`` at every span boundary; each piece carries the marks that cover it."""
    inside = [(max(0, s), min(len(text), e), m) for s, e, m in spans if s < e and s < len(text)]
    cuts = sorted({0, len(text), *(s for s, _, _ in inside), *(e for _, e, _ in inside)})
    pieces = []
    for start, end in pairwise(cuts):
        if start < end:
            marks = tuple(m for s, e, m in inside if s <= start and end <= e)
            pieces.append(Segment(text[start:end], marks))
    return pieces


Key = tuple[int, int | None]
# The record's body each stage's removals are in: an embeddings record's are in "input".
_BODY: dict[str, tuple[str, ...]] = {Stage.INPUT: ("request", "input"), Stage.OUTPUT: ("answer",)}


def removed(decision: Any, stage: str) -> dict[Key, list[dict[str, Any]]]:
    """What a redacted record took out of each text of one side, in order: the decision's
    offsets refer to the original, and these say how far the kept text has moved."""
    listed = decision.get("removed_from_record") if isinstance(decision, dict) else None
    found: dict[Key, list[dict[str, Any]]] = {}
    for r in listed or []:
        if isinstance(r, dict) and r.get("body") in _BODY[stage]:
            found.setdefault((r.get("message", -1), r.get("part")), []).append(r)
    return {key: sorted(rs, key=lambda r: int(r.get("start", 0))) for key, rs in found.items()}


def _growth(r: dict[str, Any]) -> int:
    return len(str(r.get("replacement", ""))) - (int(r.get("end", 0)) - int(r.get("start", 0)))


def shifted(gone: list[dict[str, Any]], start: int, end: int) -> tuple[int, int] | None:
    """Where ``[start, end)`` of the original lies in the kept text; None if it was removed."""
    delta = 0
    for r in gone:
        if r.get("start", 0) < end and start < r.get("end", 0):
            return None
        if r.get("end", 0) <= start:
            delta += _growth(r)
    return start + delta, end + delta


def _removal_spans(gone: list[dict[str, Any]]) -> list[Span]:
    spans: list[Span] = []
    delta = 0
    for r in gone:
        start = int(r.get("start", 0)) + delta
        mark = Mark(str(r.get("rule", "?")), str(r.get("label", "")), "removed")
        spans.append((start, start + len(str(r.get("replacement", ""))), mark))
        delta += _growth(r)
    return spans


def _spans(decision: Any, stage: str) -> dict[Key, list[Span]]:
    """The decision's spans for one stage, keyed by (message or choice, content part), placed
    in the text as recorded; a span a redacted record removed is marked as removed."""
    gone = removed(decision, stage)
    found: dict[Key, list[Span]] = {key: _removal_spans(rs) for key, rs in gone.items()}
    outcomes = decision.get("outcomes") if isinstance(decision, dict) else None
    for outcome in outcomes or []:
        if outcome.get("stage") != stage:
            continue
        for ev in outcome.get("evidence") or []:
            mark = Mark(outcome.get("rule", "?"), ev.get("label", ""), outcome.get("enforced", ""))
            key = (ev.get("message", -1), ev.get("part"))
            placed = shifted(gone.get(key, []), ev.get("start", 0), ev.get("end", 0))
            if placed is not None:
                found.setdefault(key, []).append((*placed, mark))
    return found


def _parts(content: Any, index: int, spans: dict[tuple[int, int | None], list[Span]]) -> list[Part]:
    if isinstance(content, str):
        return [Part(segments(content, spans.get((index, None), [])))]
    if not isinstance(content, list):
        return [] if content is None else [Part(note=json.dumps(content, ensure_ascii=False))]
    parts = []
    for number, part in enumerate(content):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(Part(segments(part["text"], spans.get((index, number), []))))
        else:
            kind = part.get("type", "part") if isinstance(part, dict) else "part"
            parts.append(Part(note=f"[{kind}, not shown]"))
    return parts


def _message(
    role: str, message: dict[str, Any], parts: list[Part], judged: dict[str, Verdict]
) -> Message:
    parts += [Part(call=call) for call in calls(message, judged)]
    if "item" in message:  # a Responses item with no chat counterpart, kept as it is
        parts.append(Part(note=pretty(message["item"])))
    return Message(role, parts, sum(1 for p in parts for s in p.segments if s.marks))


def conversation(request: Any, decision: Any) -> list[Message]:
    """The request's messages, as the user sent them, with the input rules' spans; a tool
    result with the call it answers."""
    messages = request.get("messages") if isinstance(request, dict) else None
    spans = _spans(decision, Stage.INPUT)
    shown: list[Message] = []
    made: dict[str, ToolCall] = {}  # the calls earlier messages made, by id
    for index, message in enumerate(messages or []):
        if isinstance(message, dict):
            role = str(message.get("role", "?"))
            shown.append(_message(role, message, _parts(message.get("content"), index, spans), {}))
            made |= {p.call.id: p.call for p in shown[-1].parts if p.call and p.call.id}
            if role in ("tool", "function"):
                _answering(shown[-1], message, made)
    return shown


def _answering(shown: Message, message: dict[str, Any], made: dict[str, ToolCall]) -> None:
    """A tool result says which call it answers (a legacy function result, by name)."""
    call_id = message.get("tool_call_id")
    if isinstance(call_id, str):
        shown.answers_id, shown.answers = call_id, made.get(call_id)
    elif isinstance(message.get("name"), str):
        named = [c for c in made.values() if c.name == message["name"]]
        shown.answers = named[-1] if named else None
        shown.answers_id = message["name"]


def inputs_request(inputs: list[str]) -> dict[str, Any]:
    """An embeddings request's inputs as messages, so they are shown and highlighted as a
    conversation is: input ``i`` is message ``i`` in the decision's evidence."""
    n = len(inputs)
    return {
        "messages": [
            {"role": f"input {i + 1} of {n}", "content": text} for i, text in enumerate(inputs)
        ]
    }


def answers(response: Any, decision: Any) -> list[Message]:
    """Each choice of the answer, as the model gave it, with the output rules' spans."""
    choices = response.get("choices") if isinstance(response, dict) else None
    spans = _spans(decision, Stage.OUTPUT)
    judged = verdicts(decision, CALLED)
    shown = []
    for index, choice in enumerate(choices or []):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            parts = _parts(message.get("content"), index, spans)
            role = f"assistant (choice {index})"
            shown.append(_message(role, message, parts, on_choice(judged, index)))
    return shown


def span_texts(
    request: Any, response: Any, outcome: dict[str, Any], decision: Any = None
) -> list[str]:
    """The exact text of each span an outcome found (what its highlight covers); for a span
    a redacted record removed, what stands in its place."""
    output = outcome.get("stage") == Stage.OUTPUT
    gone = removed(decision, Stage.OUTPUT if output else Stage.INPUT)
    found = []
    for ev in outcome.get("evidence") or []:
        key = (ev.get("message", -1), ev.get("part"))
        text = text_at(
            response if output else request, "choices" if output else "messages", *key
        )
        if text is None or ev.get("end", 0) <= ev.get("start", 0):
            continue
        placed = shifted(gone.get(key, []), ev["start"], ev["end"])
        if placed is None:
            found += [str(r["replacement"]) for r in gone[key] if _covers(r, ev)][:1]
        else:
            found.append(text[placed[0] : placed[1]])
    return found


def _covers(r: dict[str, Any], ev: dict[str, Any]) -> bool:
    return bool(r.get("start", 0) < ev["end"] and ev["start"] < r.get("end", 0))
