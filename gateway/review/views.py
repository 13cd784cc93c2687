"""What a reviewer is shown of an item: the exchange, the context, the decision, the guideline."""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import Exchange, GuidelineRevision, Judgment, PolicyRevision, ReviewItem
from gateway.db.session import Sessions
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.store import PolicyStore
from gateway.records.shapes import answer_view, request_view
from gateway.review.reviewers import ReviewerIdentity

EMBEDDINGS = "embeddings"  # the endpoint an embeddings exchange is recorded under
#: endpoints whose records are chat bodies already (an item's ``recorded`` is left out)
_CHAT_SHAPED = ("chat.completions", EMBEDDINGS)
NO_ALTERNATIVE_FOR_EMBEDDINGS = (
    "No alternative answer is generated for an embeddings request: it has no answer to"
    " compare one with, so there is no answer to prefer."
)


def chat_bodies(exchange: Exchange) -> tuple[Any, Any]:
    """The exchange's request and answer as chat completion bodies, as every reader of a
    record reads them (``records.shapes.as_chat``: a Responses or legacy completions exchange
    as chat messages and choices, which the decision's evidence indexes refer to). A record
    kept redacted already holds that view, and is read as it is."""
    request, response = exchange.request_body, exchange.response_body
    if not _chat_request(request):
        request = request_view(exchange.endpoint, request)
    if not _chat_answer(response):
        response = answer_view(exchange.endpoint, response)
    return request, response


def _chat_request(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("messages"), list)


def _chat_answer(body: Any) -> bool:
    choices = body.get("choices") if isinstance(body, dict) else None
    return isinstance(choices, list) and all(
        isinstance(c, dict) and "message" in c for c in choices
    )


def embedding_inputs(request: Any) -> list[str] | None:
    """An embeddings request's inputs as the texts the input rules checked (input ``i`` is
    message ``i`` in the decision's evidence), as recorded; None for token arrays."""
    value = request.get("input") if isinstance(request, dict) else None
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return None
    return list(texts)


def judgment_view(j: Judgment) -> dict[str, Any]:
    return {
        "id": j.id,
        "item_id": j.item_id,
        "reviewer_id": j.reviewer_id,
        "kind": j.kind,
        "purpose": j.purpose,
        "rule_verdicts": j.rule_verdicts,
        "verdict": j.verdict,
        "severity": j.severity,
        "preferred": j.preferred_source,
        "rewrite": j.preferred_text,
        "rationale": j.rationale,
        "guideline_revision": j.guideline_revision,
        "guideline_acknowledged": j.guideline_acknowledged,
        "seconds_spent": j.seconds_spent,
        "supersedes": j.supersedes,
        "created_at": j.created_at.isoformat(),
    }


def item_summary(item: ReviewItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "exchange_id": item.exchange_id,
        "context": item.context,
        "queue": item.queue,
        "reason": item.reason,
        "escalation_note": item.escalation_note,
        "rule_ids": item.rule_ids,
        "state": item.state,
        "reviewers_needed": item.reviewers_needed,
        "judgments_done": item.judgments_done,
        "claimed_by": item.claimed_by,
        "lease_expires_at": item.lease_expires_at.isoformat() if item.lease_expires_at else None,
        "policy_revision": item.policy_revision,
        "guideline_revision": item.guideline_revision,
        "created_at": item.created_at.isoformat(),
    }


async def recorded_content(
    session: AsyncSession, policy: CompiledPolicy | None, revision: str | None
) -> str:
    """The ``record.content`` of the policy revision that recorded the exchange (which the
    current revision may have changed since): full, redacted or none."""
    if policy is not None and (revision is None or policy.revision == revision):
        return policy.policy.record.content
    stored = await session.get(PolicyRevision, revision) if revision else None
    if stored is None:
        return policy.policy.record.content if policy is not None else "full"
    try:
        record = (yaml.safe_load(stored.text) or {}).get("record") or {}
        content = record.get("content", "full")
    except (yaml.YAMLError, AttributeError):
        return "full"
    return content if content in ("full", "redacted", "none") else "full"


def record_view(content: str, exchange: Exchange | None) -> dict[str, Any]:
    """How the record keeps the exchange's text, and what a redacted one removed."""
    decision = exchange.decision if exchange is not None else None
    removed = decision.get("removed_from_record") if isinstance(decision, dict) else None
    kinds = Counter(
        (r.get("rule", "?"), r.get("label", "?")) for r in removed or [] if isinstance(r, dict)
    )
    return {
        "content": content,
        # a redacted record from before the removals were listed replaced every finding
        "removals_listed": removed is not None,
        "removed": [
            {"rule": rule, "label": label, "count": n} for (rule, label), n in sorted(kinds.items())
        ],
    }


def _erased_at(exchange: Exchange | None) -> str | None:
    erased = exchange.erased_at if exchange is not None else None
    return erased.isoformat() if erased is not None else None


async def item_view(
    sessions: Sessions, policies: PolicyStore, who: ReviewerIdentity, item: ReviewItem
) -> dict[str, Any]:
    async with sessions() as session:
        exchange = await session.get(Exchange, item.exchange_id)
        guideline = (
            await session.get(GuidelineRevision, item.guideline_revision)
            if item.guideline_revision
            else None
        )
        query = select(Judgment).where(Judgment.item_id == item.id).order_by(Judgment.created_at)
        if not who.leads:  # blind: a reviewer sees only their own judgments
            query = query.where(Judgment.reviewer_id == who.id)
        judgments = list(await session.scalars(query))
        policy = policies.get(item.context)
        content = await recorded_content(session, policy, item.policy_revision)
    embeddings = exchange is not None and exchange.endpoint == EMBEDDINGS
    request, response = chat_bodies(exchange) if exchange is not None else (None, None)
    return {
        **item_summary(item),
        "alternative": item.alternative,
        "alternative_note": NO_ALTERNATIVE_FOR_EMBEDDINGS if embeddings else None,
        "context_info": {
            "purpose": policy.policy.purpose.strip() if policy else None,
            "audience": policy.policy.audience if policy else None,
            "owner": policy.policy.owner if policy else None,
        },
        "exchange": {
            "endpoint": exchange.endpoint if exchange else None,
            "status": exchange.status if exchange else None,
            "error_type": exchange.error_type if exchange else None,
            # as chat bodies, whatever the endpoint; the record's own bodies beside them
            "request": request,
            "response": response,
            "recorded": {"request": exchange.request_body, "response": exchange.response_body}
            if exchange is not None and exchange.endpoint not in _CHAT_SHAPED
            else None,
            "inputs": embedding_inputs(exchange.request_body) if exchange and embeddings else None,
            "decision": exchange.decision if exchange else None,
            "content_kept": exchange is not None and exchange.request_body is not None,
            # when the content was erased (retention or a person's request), if it was
            "erased_at": _erased_at(exchange),
            "record": record_view(content, exchange),
        },
        "guideline": {
            "revision": guideline.revision,
            "path": guideline.path,
            "text": guideline.text,
        }
        if guideline
        else None,
        "judgments": [judgment_view(j) for j in judgments],
    }
