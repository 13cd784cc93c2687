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
from gateway.review.reviewers import ReviewerIdentity

EMBEDDINGS = "embeddings"  # the endpoint an embeddings exchange is recorded under
NO_ALTERNATIVE_FOR_EMBEDDINGS = (
    "No alternative answer is generated for an embeddings request: it has no answer to"
    " compare one with, so there is no answer to prefer."
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
            "request": exchange.request_body if exchange else None,
            "response": exchange.response_body if exchange else None,
            "inputs": embedding_inputs(exchange.request_body) if exchange and embeddings else None,
            "decision": exchange.decision if exchange else None,
            "content_kept": exchange is not None and exchange.request_body is not None,
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
