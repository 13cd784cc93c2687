"""Which exchanges go to review, in which queue, and why.

A decision that flags an exchange sends it to the queue each flagging rule names (or the
context's default queue); a share of unflagged answered traffic (``review.sample_rate``) is
sampled into the default queue for oversight, so that what the rules miss is seen too. The
item keeps why it is there: the rule ids, or "sampled". A shadow rule that would have flagged
(its action is flag, or it names a queue) sends the exchange to review the same way: its
reviews are how the rule is measured before it acts. Items are written in the same
transaction as their exchange, by the recorder.

An embeddings request has no answer: one goes to review only when a rule flags its inputs
(the reviewer judges the rules), never by sampling, which is there to judge answers.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

from gateway.clock import now
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.review.views import EMBEDDINGS

FALLBACK_QUEUE = "review"


def review_rows(
    exchange_id: str,
    status: str,
    decision: Decision | None,
    policy: CompiledPolicy | None,
    rng: random.Random,
    *,
    endpoint: str,
) -> list[dict[str, Any]]:
    if decision is None or policy is None:
        return []
    review = policy.policy.review
    default = review.default_queue or FALLBACK_QUEUE
    queues: dict[str, list[str]] = {}
    for outcome in decision.to_review:
        queues.setdefault(outcome.review or default, []).append(outcome.rule)
    if queues:
        return [
            _item(exchange_id, policy, decision, q, "flagged", rules) for q, rules in queues.items()
        ]
    answered = status == "ok" and endpoint != EMBEDDINGS
    if answered and review.sample_rate > 0 and rng.random() < review.sample_rate:
        return [_item(exchange_id, policy, decision, default, "sampled", [])]
    return []


def _item(
    exchange_id: str,
    policy: CompiledPolicy,
    decision: Decision,
    queue: str,
    reason: str,
    rules: list[str],
) -> dict[str, Any]:
    guideline = policy.guidelines.get(queue)
    config = policy.policy.review.queues.get(queue)
    return {
        "id": "rvi_" + secrets.token_hex(10),
        "exchange_id": exchange_id,
        "context": policy.context,
        "queue": queue,
        "reason": reason,
        "rule_ids": sorted(set(rules)),
        "policy_revision": decision.policy_revision,
        "guideline_revision": guideline.revision if guideline else None,
        "guideline_path": str(guideline.path) if guideline else None,
        "reviewers_needed": config.reviewers_per_item if config else 1,
        "judgments_done": 0,
        "state": "open",
        "created_at": now(),
    }
