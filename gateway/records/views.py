"""What a record keeps of an exchange's text when its policy says ``record.content: redacted``.

Redacted means: personal data and secrets are removed, and the evidence a reviewer needs to
judge a rule is kept. Removed is what a *sensitive* rule finds (one using the ``pii``
detector, one whose action is ``redact``, or one marked ``sensitive: true``): each such rule's
detector runs over every text of the record, every message of the request whatever its role
and every choice of the answer, and what it finds becomes the rule's replacement
(``[email]``); its findings in the decision are removed as well. So an e-mail address is gone
from the question and from the answer that repeats it alike. What the other rules found (an
injection phrase, a keyword, a feelings claim) stays as it was written: it is what a reviewer
judges the rule by, what an export's prompt and answer both carry, and what a candidate test
case is made of.

The decision's evidence keeps offsets into the original text; ``Removal`` says, in the same
terms, where each removal was, so the review page can still place the kept spans.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from gateway.checks.spans import redact
from gateway.policy.compiled import SENSITIVE_DETECTORS, CompiledPolicy, CompiledRule
from gateway.policy.decision import Decision
from gateway.policy.engine import message_texts

#: where a text sits in the record: (body, message or choice, content part or tool call); body
#: is "request", "input" (embeddings), "answer", or "request_calls" / "answer_calls" for the
#: arguments of a message's tool calls
Key = tuple[str, int, int | None]
_STAGE_OF = {
    "request": "input",
    "input": "input",
    "request_calls": "input",
    "answer": "output",
    "answer_calls": "output",
}


@dataclass(frozen=True, slots=True, order=True)
class Removal:
    """One span taken out of the record, at offsets into the original text."""

    start: int
    end: int
    body: str
    message: int
    part: int | None
    rule: str
    label: str
    replacement: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "message": self.message,
            "part": self.part,
            "start": self.start,
            "end": self.end,
            "rule": self.rule,
            "label": self.label,
            "replacement": self.replacement,
        }


@dataclass(frozen=True, slots=True)
class Redacted:
    request: Any
    answer: Any
    removed: list[Removal]


def _calls(body: str, index: int, message: dict[str, Any]) -> list[tuple[Key, str]]:
    """A message's tool-call arguments (JSON text the model wrote or the client sent back)."""
    calls = message.get("tool_calls")
    found: list[tuple[Key, str]] = []
    for number, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            found.append(((body, index, number), function["arguments"]))
    return found


def _request_texts(request: dict[str, Any]) -> list[tuple[Key, str]]:
    found: list[tuple[Key, str]] = []
    messages = request.get("messages")
    if isinstance(messages, list):
        found += [(("request", r.message, r.part), r.text) for r in message_texts(messages)]
        for index, message in enumerate(messages):
            if isinstance(message, dict):
                found += _calls("request_calls", index, message)
    inputs = request.get("input")  # an embeddings request
    if isinstance(inputs, str):
        found.append((("input", 0, None), inputs))
    elif isinstance(inputs, list):
        found += [(("input", i, None), t) for i, t in enumerate(inputs) if isinstance(t, str)]
    return found


def _texts(request: Any, answer: Any) -> list[tuple[Key, str]]:
    found = _request_texts(request) if isinstance(request, dict) else []
    choices = answer.get("choices") if isinstance(answer, dict) else None
    for index, choice in enumerate(choices if isinstance(choices, list) else []):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            found += [(("answer", index, r.part), r.text) for r in message_texts([message])]
            found += _calls("answer_calls", index, message)
    return found


def _removal(
    key: Key, start: int, end: int, rule: CompiledRule | None, rid: str, label: str
) -> Removal:
    replacement = rule.spec.replacement.format(label=label) if rule else f"[{label}]"
    return Removal(start, end, key[0], key[1], key[2], rid, label, replacement)


def _detected(rules: tuple[CompiledRule, ...], key: Key, text: str) -> set[Removal]:
    found = set()
    for rule in rules:
        try:
            findings = rule.find(text)
        except Exception:  # a check that fails here must not leave its text in the record
            return {_removal(key, 0, len(text), rule, rule.id, "check_failed")}
        found |= {_removal(key, f.start, f.end, rule, rule.id, f.label) for f in findings}
    return found


def _decided(
    decision: Decision, rules: dict[str, CompiledRule], policy_known: bool, key: Key, text: str
) -> set[Removal]:
    """The decision's own evidence of sensitive rules on this text (a rule may read a text
    differently in the request than alone, e.g. across roles)."""
    found: set[Removal] = set()
    if key[0].endswith("_calls"):
        return found  # rules read contents, not tool-call arguments
    for outcome in decision.fired:
        sensitive = outcome.rule in rules or (
            not policy_known and outcome.detector in SENSITIVE_DETECTORS
        )
        if not sensitive or outcome.stage != _STAGE_OF[key[0]]:
            continue
        for e in outcome.evidence:
            if (e.message, e.part) == key[1:] and 0 <= e.start < e.end <= len(text):
                rule = rules.get(outcome.rule)
                found.add(_removal(key, e.start, e.end, rule, outcome.rule, e.label))
    return found


def _merged(found: set[Removal]) -> list[Removal]:
    """Overlapping removals become one (the first one's replacement stands for both)."""
    merged: list[Removal] = []
    for r in sorted(found):
        last = merged[-1] if merged else None
        if last is not None and r.start < last.end:
            if r.end > last.end:
                merged[-1] = Removal(last.start, r.end, *_tail(last))
        else:
            merged.append(r)
    return merged


def _tail(r: Removal) -> tuple[str, int, int | None, str, str, str]:
    return (r.body, r.message, r.part, r.rule, r.label, r.replacement)


def _removals(
    request: Any, answer: Any, decision: Decision | None, policy: CompiledPolicy | None
) -> dict[Key, tuple[str, list[Removal]]]:
    rules = policy.sensitive_rules if policy is not None else ()
    by_id = {rule.id: rule for rule in rules}
    planned = {}
    for key, text in _texts(request, answer):
        found = _detected(rules, key, text)
        if decision is not None:
            found |= _decided(decision, by_id, policy is not None, key, text)
        if found:
            planned[key] = (text, _merged(found))
    return planned


def _copied(request: Any, answer: Any, bodies: set[str]) -> tuple[Any, Any]:
    """Copies of the parts that change (the rest is shared: records copy shallowly)."""
    if bodies & {"request", "request_calls"}:
        request = {**request, "messages": copy.deepcopy(request["messages"])}
    if "input" in bodies:
        request = {**request, "input": copy.deepcopy(request["input"])}
    if bodies & {"answer", "answer_calls"}:
        answer = {**answer, "choices": copy.deepcopy(answer["choices"])}
    return request, answer


def _put(request: Any, answer: Any, key: Key, kept: str) -> None:
    body, index, part = key
    if body == "input":
        if isinstance(request["input"], str):
            request["input"] = kept
        else:
            request["input"][index] = kept
        return
    holder = (
        request["messages"][index]
        if body.startswith("request")
        else answer["choices"][index]["message"]
    )
    if body.endswith("_calls"):
        holder["tool_calls"][part]["function"]["arguments"] = kept
    elif part is None:
        holder["content"] = kept
    else:
        holder["content"][part]["text"] = kept


def _apply(request: Any, answer: Any, planned: dict[Key, tuple[str, list[Removal]]]) -> Redacted:
    request, answer = _copied(request, answer, {key[0] for key in planned})
    removed = []
    for key, (text, spans) in planned.items():
        removed += spans
        _put(request, answer, key, redact(text, [(r.start, r.end, r.replacement) for r in spans]))
        if key[0] in ("answer", "answer_calls") and answer["choices"][key[1]].get("logprobs"):
            answer["choices"][key[1]]["logprobs"] = None  # its tokens would spell out the text
    return Redacted(request, answer, removed)


def redacted_record(
    request: Any, answer: Any, decision: Decision | None, policy: CompiledPolicy | None
) -> Redacted:
    """The request and the answer with every sensitive span removed, and where each was."""
    return _apply(request, answer, _removals(request, answer, decision, policy))


def text_at(body: Any, key: str, index: int, part: int | None) -> str | None:
    """The text of ``body[key][index]`` (a request's message or an answer's choice), or of
    its content part ``part``; None where the record holds no text there."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not 0 <= index < len(items):
        return None
    held = items[index]
    if key == "choices" and isinstance(held, dict):
        held = held.get("message")
    content = held.get("content") if isinstance(held, dict) else None
    if isinstance(content, list) and part is not None and 0 <= part < len(content):
        content = content[part].get("text") if isinstance(content[part], dict) else None
    return content if isinstance(content, str) else None
