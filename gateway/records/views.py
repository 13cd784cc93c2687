"""What a record keeps of an exchange's text when its policy says ``record.content: redacted``.

Every span that any rule found (whatever the rule's action) is replaced by its label, in the
request as the client sent it and in the answer as the backend gave it, so a blocked message's
card number is not kept either. The decision keeps the offsets, which refer to the original.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.policy.decision import Decision
from gateway.policy.engine import redact


def _spans(
    decision: Decision, stage: str
) -> dict[tuple[int, int | None], list[tuple[int, int, str]]]:
    spans: dict[tuple[int, int | None], list[tuple[int, int, str]]] = {}
    for outcome in decision.fired:
        if outcome.stage != stage:
            continue
        for e in outcome.evidence:
            if e.message >= 0 and e.end > e.start:
                spans.setdefault((e.message, e.part), []).append((e.start, e.end, f"[{e.label}]"))
    return spans


def _redact_content(
    holder: dict[str, Any], part: int | None, spans: list[tuple[int, int, str]]
) -> None:
    content = holder.get("content")
    if part is None and isinstance(content, str):
        holder["content"] = redact(content, spans)
    elif part is not None and isinstance(content, list) and part < len(content):
        item = content[part]
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            item["text"] = redact(item["text"], spans)


def redacted_request(body: Any, decision: Decision) -> Any:
    spans = _spans(decision, "input")
    if not spans or not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return body
    body = {**body, "messages": copy.deepcopy(body["messages"])}
    for (index, part), found in spans.items():
        if index < len(body["messages"]) and isinstance(body["messages"][index], dict):
            _redact_content(body["messages"][index], part, found)
    return body


def redacted_answer(answer: Any, decision: Decision) -> Any:
    spans = _spans(decision, "output")
    if not spans or not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        return answer
    answer = {**answer, "choices": copy.deepcopy(answer["choices"])}
    for (index, _), found in spans.items():
        if index < len(answer["choices"]):
            choice = answer["choices"][index]
            message = choice.get("message")
            if isinstance(message, dict):
                _redact_content(message, None, found)
            if isinstance(choice, dict) and choice.get("logprobs"):
                choice["logprobs"] = None  # the tokens would spell out what was redacted
    return answer
