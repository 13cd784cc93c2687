"""The review stage: which exchanges go to review, in which queue, and why.

A decision that flags an exchange sends it to the queue each flagging rule names (or the
context's default queue); a share of unflagged answered traffic (``review.sample_rate``) is
sampled into the default queue for oversight, so that what the rules miss is seen too. The
item keeps why it is there: the rule ids, or "sampled". A shadow rule that would have flagged
(its action is flag, or it names a queue) sends the exchange to review the same way: its
reviews are how the rule is measured before it acts.

The stage runs when the exchange has ended and only chooses the queues; the items' rows are
made with the exchange's own (``review_rows``, in the recorder's task) and written in the same
transaction. An embeddings request has no answer: one goes to review only when a rule flags
its inputs (the reviewer judges the rules), never by sampling, which is there to judge answers.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.clock import now
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.review.views import EMBEDDINGS

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext

FALLBACK_QUEUE = "review"


@dataclass(frozen=True, slots=True)
class ReviewRoute:
    queue: str
    reason: str  # "flagged" or "sampled"
    rules: tuple[str, ...] = ()

    @classmethod
    def choose(
        cls,
        policy: CompiledPolicy,
        decision: Decision,
        status: str,
        endpoint: str,
        rng: random.Random,
    ) -> list[ReviewRoute]:
        review = policy.policy.review
        default = review.default_queue or FALLBACK_QUEUE
        queues: dict[str, list[str]] = {}
        for outcome in decision.to_review:
            queues.setdefault(outcome.review or default, []).append(outcome.rule)
        if queues:
            return [cls(q, "flagged", tuple(sorted(set(rules)))) for q, rules in queues.items()]
        answered = status == "ok" and endpoint != EMBEDDINGS
        if answered and review.sample_rate > 0 and rng.random() < review.sample_rate:
            return [cls(default, "sampled")]
        return []


def review_rows(
    exchange_id: str, ctx: RequestContext, routes: list[ReviewRoute]
) -> list[dict[str, Any]]:
    policy, decision = ctx.policy, ctx.decision
    rows = []
    for route in routes:
        guideline = policy.guidelines.get(route.queue)
        config = policy.policy.review.queues.get(route.queue)
        rows.append(
            {
                "id": "rvi_" + secrets.token_hex(10),
                "exchange_id": exchange_id,
                "context": policy.context,
                "queue": route.queue,
                "reason": route.reason,
                "rule_ids": list(route.rules),
                "policy_revision": decision.policy_revision,
                "guideline_revision": guideline.revision if guideline else None,
                "guideline_path": str(guideline.path) if guideline else None,
                "reviewers_needed": config.reviewers_per_item if config else 1,
                "judgments_done": 0,
                "state": "open",
                "created_at": now(),
            }
        )
    return rows
