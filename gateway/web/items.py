"""Taking, reading and judging an item.

An item is shown only to a reviewer whose queues hold it (anything else is 'not found', as in
the API). The form is there only when the reviewer may judge: their own live claim, or, for a
lead, an escalated or disputed item. Judging goes through the same service as the API.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.clock import now
from gateway.db.models import ReviewItem
from gateway.deps import ServicesDep, UnitDep
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.review.alternatives import ensure_alternative
from gateway.review.data import answer_text
from gateway.review.reviewers import ReviewerIdentity
from gateway.review.states import WITH_A_LEAD, ItemState, Preferred, Purpose
from gateway.review.views import EMBEDDINGS, item_view
from gateway.services import Services
from gateway.web import forms
from gateway.web.conversation import answers, conversation, inputs_request, span_texts
from gateway.web.deps import FormDep, SignedInDep
from gateway.web.pages import NOTICES, pseudonyms
from gateway.web.render import PREFIX, page, redirect
from gateway.web.sessions import SignedIn
from gateway.web.tools import judged_tools, offered

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer a reviewer may prefer, shown under a neutral letter."""

    letter: str
    source: str
    text: str


def _mode(who: ReviewerIdentity, item: ReviewItem) -> str | None:
    """'review', 'adjudication', or None when this reviewer cannot judge the item now."""
    if item.state in WITH_A_LEAD:
        return Purpose.ADJUDICATION if who.leads else None
    live = item.lease_expires_at is not None and item.lease_expires_at >= now()
    if item.state == ItemState.OPEN and item.claimed_by == who.id and live:
        return Purpose.REVIEW
    return None


def _refused(exchange: dict[str, Any]) -> bool:
    """The gateway answered in the model's place (an input rule blocked the request)."""
    return exchange.get("error_type") == "policy_refusal"


def _choices(who: ReviewerIdentity, item: ReviewItem, exchange: dict[str, Any]) -> list[Choice]:
    """The original and the generated alternative, in an order fixed per reviewer and item.
    A refusal the gateway wrote is not the model's answer, so it is not offered as one."""
    shown = []
    original = None if _refused(exchange) else answer_text(exchange["response"])
    if original is not None:
        shown.append((Preferred.ORIGINAL, original))
    alternative = item.alternative if isinstance(item.alternative, dict) else {}
    if isinstance(alternative.get("content"), str):
        shown.append((Preferred.ALTERNATIVE, alternative["content"]))
    if hashlib.sha256(f"{who.id}:{item.id}".encode()).digest()[0] & 1:
        shown.reverse()
    return [Choice("AB"[i], source, text) for i, (source, text) in enumerate(shown)]


def _spans_placeable(record: dict[str, Any]) -> bool:
    """Offsets point into the text as it was sent. A redacted record says where it removed
    what, so the kept spans can be moved into place; one made before it said so cannot.
    ``record`` is as the revision that recorded the exchange kept it, not the current one."""
    content = record.get("content")
    return content == "full" or (content == "redacted" and bool(record.get("removals_listed")))


def _shown_request(exchange: dict[str, Any]) -> Any:
    """The request as the page shows it: an embeddings request's inputs as its messages."""
    inputs = exchange.get("inputs")
    return inputs_request(inputs) if isinstance(inputs, list) else exchange["request"]


def _fired(exchange: dict[str, Any], request: Any, placed: bool) -> list[dict[str, Any]]:
    """The rules that fired (or failed), numbered as the highlights name them."""
    decision = exchange["decision"]
    outcomes = decision.get("outcomes") if isinstance(decision, dict) else None
    fired = [o for o in outcomes or [] if o.get("evidence") or o.get("error")]
    return [
        {
            **o,
            "number": n,
            "spans": span_texts(request, exchange["response"], o, decision)
            if placed
            else [],
            "whole": any(e.get("message") == -1 for e in o.get("evidence") or []),
            "tools": judged_tools(o),
        }
        for n, o in enumerate(fired, 1)
    ]


def _standing(judgments: list[dict[str, Any]], reviewer_id: str) -> dict[str, Any] | None:
    """The reviewer's own judgment on the item that no later one of theirs supersedes."""
    mine = [j for j in judgments if j["reviewer_id"] == reviewer_id]
    replaced = {j["supersedes"] for j in mine if j["supersedes"]}
    standing = [j for j in mine if j["id"] not in replaced]
    return standing[-1] if standing else None


def _prefill(judgment: dict[str, Any]) -> dict[str, str]:
    """A judgment as the form's fields, to correct it."""
    fields = {f"rule:{rule}": verdict for rule, verdict in judgment["rule_verdicts"].items()}
    for name in ("verdict", "severity", "preferred", "rationale"):
        if judgment[name]:
            fields[name] = judgment[name]
    if judgment["preferred"] == Preferred.REWRITE and judgment["rewrite"]:
        fields["rewrite"] = judgment["rewrite"]
    if judgment["guideline_acknowledged"]:
        fields["guideline_acknowledged"] = "on"
    return fields


async def _show(
    request: Request,
    signed: SignedIn,
    services: Services,
    item: ReviewItem,
    *,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
    notice: str | None = None,
) -> Response:
    view = await item_view(services.sessions, services.policies, signed.who, item)
    exchange = view["exchange"]
    mode = _mode(signed.who, item)
    mine = _standing(view["judgments"], signed.who.id)
    if mode is None and mine is not None:
        mode = "correction"
        form = form or _prefill(mine)
    placed = _spans_placeable(exchange["record"])
    request_shown = _shown_request(exchange)
    outcomes = _fired(exchange, request_shown, placed)
    return page(
        request,
        "item.html",
        signed,
        400 if error else 200,
        item=view,
        mode=mode,
        correcting=mine["id"] if mine else None,
        messages=conversation(request_shown, exchange["decision"] if placed else None),
        offered=offered(request_shown, exchange["decision"]),
        answers=answers(exchange["response"], exchange["decision"] if placed else None),
        outcomes=outcomes,
        numbers={o["rule"]: o["number"] for o in reversed(outcomes)},
        choices=_choices(signed.who, item, exchange),
        refused=_refused(exchange),
        embeddings=exchange["endpoint"] == EMBEDDINGS,
        pseudonyms=await pseudonyms(services, (j["reviewer_id"] for j in view["judgments"])),
        placed=placed,
        opened_at=f"{time.time():.3f}",
        error=error,
        form=form or {},
        notice=NOTICES.get(notice or ""),
    )


@router.post("/queues/{context}/{queue}/next")
async def take_next(
    context: str, queue: str, signed: SignedInDep, _: FormDep, services: ServicesDep
) -> Response:
    return await _next_in(services, signed.who, context, queue)


async def _next_in(
    services: Services, who: ReviewerIdentity, context: str, queue: str, notice: str = ""
) -> Response:
    """Straight on to the reviewer's next item in the queue, or back to the queues page."""
    item = await services.queues.claim(who, context, queue)
    if item is None:
        done = notice or "empty"
        return redirect(f"{PREFIX}/?notice={done}&queue={quote(f'{context}/{queue}')}")
    await ensure_alternative(services, item)
    return redirect(f"{PREFIX}/items/{quote(item.id)}" + (f"?notice={notice}" if notice else ""))


@router.get("/items/{item_id}")
async def show(
    item_id: str,
    request: Request,
    signed: SignedInDep,
    services: UnitDep,
    notice: str | None = None,
) -> Response:
    item = await services.queues.item_for(signed.who, item_id)
    return await _show(request, signed, services, item, notice=notice)


@router.post("/items/{item_id}/judge")
async def judge(
    item_id: str, request: Request, signed: SignedInDep, form: FormDep, services: ServicesDep
) -> Response:
    item = await services.queues.item_for(signed.who, item_id)
    adjudicating = _mode(signed.who, item) == Purpose.ADJUDICATION
    try:
        data = forms.judgment(form, list(item.rule_ids or []))
        await services.judging.judge(signed.who, item_id, data)
    except (InvalidRequest, PermissionDenied) as exc:
        item = await services.queues.item_for(signed.who, item_id)  # as it is now
        return await _show(request, signed, services, item, error=exc.message, form=form)
    if adjudicating:
        return redirect(f"{PREFIX}/lead?notice=adjudicated")
    return await _next_in(services, signed.who, item.context, item.queue, "judged")


@router.post("/items/{item_id}/correct")
async def correct(
    item_id: str, request: Request, signed: SignedInDep, form: FormDep, services: ServicesDep
) -> Response:
    """A new judgment that supersedes the reviewer's own; the first stays on record."""
    item = await services.queues.item_for(signed.who, item_id)
    try:
        data = forms.judgment(form, list(item.rule_ids or []))
        await services.judging.correct(signed.who, forms.text(form, "supersedes") or "", data)
    except (InvalidRequest, PermissionDenied) as exc:
        return await _show(request, signed, services, item, error=exc.message, form=form)
    return redirect(f"{PREFIX}/items/{quote(item_id)}?notice=corrected")


@router.post("/items/{item_id}/skip")
async def skip(item_id: str, signed: SignedInDep, _: FormDep, services: UnitDep) -> Response:
    item = await services.queues.release(signed.who, item_id, escalate=False)
    return redirect(f"{PREFIX}/?notice=skipped&queue={quote(f'{item.context}/{item.queue}')}")


@router.post("/items/{item_id}/escalate")
async def escalate(
    item_id: str, signed: SignedInDep, form: FormDep, services: ServicesDep
) -> Response:
    note = forms.text(form, "note")
    item = await services.queues.release(signed.who, item_id, escalate=True, note=note)
    return await _next_in(services, signed.who, item.context, item.queue, "escalated")
