"""A stored response read back: the Response as it is served (``GET``), its input items, and
its turn of a conversation (what ``previous_response_id`` rebuilds from).

A response answered by this process is served as its client got it. One read from its record
is held to the context's current output rules again first (the record keeps the backend's
answer, before the gateway's changes), so nothing the policy withholds comes out by a read.
A record that keeps redacted content (``record.content: redacted``) holds chat views: they
are turned back into a Response and items, with the redactions in them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from gateway.detectors.pool import DetectorPool
from gateway.errors import PolicyViolation
from gateway.pipeline.output import OutputStage
from gateway.pipeline.responses.answer import apply_view, output_of, response_of
from gateway.pipeline.responses.translate import items_of, items_of_messages
from gateway.pipeline.tools_chat import scope_calls
from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.records.responses import RecentResponses, StoredResponse
from gateway.records.shapes import answer_view


async def read_answer(
    stored: StoredResponse,
    policy: CompiledPolicy,
    detectors: DetectorPool,
    recent: RecentResponses,
    *,
    turn: bool = False,
) -> dict[str, Any]:
    """The Response a read serves (``turn``: a later turn is rebuilt from; a redacted
    record's text, even where this process holds what its client got): one the rules must
    judge again is judged off the event loop when they run a model, once per policy
    revision while this process holds it."""
    if isinstance(stored.delivered, dict) and not (turn and stored.content == "redacted"):
        return stored.delivered
    cached = recent.judged(stored, policy.revision)
    if isinstance(cached, dict):
        return cached
    served = await detectors.evaluate(
        policy.heavy_at(Stage.OUTPUT), partial(_recorded, stored, policy)
    )
    recent.keep_judged(stored, policy.revision, served)
    return served


def _recorded(stored: StoredResponse, policy: CompiledPolicy) -> dict[str, Any]:
    """The Response as its record keeps it (a redacted record's chat view turned back)."""
    response = stored.response if isinstance(stored.response, dict) else {}
    if stored.content == "redacted":
        shell = {"id": stored.response_id, "object": "response", "status": "completed"}
        response = _turned_back(response, {**shell, "model": response.get("model")})
    return _held_to_rules(response, policy)


def _turned_back(view: dict[str, Any], shell: dict[str, Any]) -> dict[str, Any]:
    """A redacted record's chat view (one choice per output text, the calls on the last) as
    a Response: a message item per choice's text, then the calls."""
    choices = [c for c in view.get("choices") or () if isinstance(c, dict)] or [{}]
    response = response_of({**view, "choices": choices[-1:]}, shell)
    response["output"] = [item for c in choices for item in output_of(c.get("message") or {})]
    return response


def _held_to_rules(response: dict[str, Any], policy: CompiledPolicy) -> dict[str, Any]:
    """The tool scope on the calls and the output rules on the texts, as they are now: what
    the policy withholds is not served by a read (nor sent again by a later turn)."""
    decision = Decision(policy.revision, policy.context)
    view = answer_view("responses", response)
    changed = scope_calls(policy.tools, view, decision)
    output = OutputStage(policy, decision, disclose=False)
    if output.active:
        try:
            changed = output.answer(view) or changed
        except PolicyViolation:  # a block that errs: nothing of the text is served
            for choice in view.get("choices") or ():
                choice["message"]["content"], choice["finish_reason"] = "", "content_filter"
            changed = True
    return apply_view(response, view) if changed else response


def input_items(stored: StoredResponse) -> list[dict[str, Any]]:
    """The items the response was made from (its own input), each with an id."""
    request = stored.request if isinstance(stored.request, dict) else {}
    if stored.content == "redacted":
        messages = request.get("messages") or []
        items = items_of_messages(messages[1:] if stored.instructions else messages)
    else:
        items = items_of(request)
    return [_listed(item, f"msg_{stored.response_id[5:29]}{n:04d}") for n, item in
            enumerate(items)]


def _listed(item: Any, made_id: str) -> Any:
    """An item as the input items list shows it: with an id, a message's text as parts."""
    if not isinstance(item, dict):
        return item
    listed = {**item, "id": item.get("id") or made_id}
    if item.get("type", "message") == "message" and "role" in item:
        listed.update(type="message", status=item.get("status", "completed"))
        if isinstance(item.get("content"), str):
            kind = "output_text" if item["role"] == "assistant" else "input_text"
            listed["content"] = [{"type": kind, "text": item["content"]}]
    return listed


def turn_items(stored: StoredResponse, answer: dict[str, Any]) -> list[Any]:
    """The response's turn: its input as the input rules left it, then its output as items
    (``answer``: ``read_answer(..., turn=True)``)."""
    output = answer.get("output") or []
    admitted = stored.admitted if isinstance(stored.admitted, list) else None
    inputs = input_items(stored) if admitted is None else [
        _listed(item, f"msg_{stored.response_id[5:29]}{n:04d}")
        for n, item in enumerate(admitted)
    ]
    return [*inputs, *(i for i in output if isinstance(i, dict))]


def previous_of(stored: StoredResponse) -> str | None:
    request = stored.request if isinstance(stored.request, dict) else {}
    previous = request.get("previous_response_id")
    return previous if isinstance(previous, str) else None
