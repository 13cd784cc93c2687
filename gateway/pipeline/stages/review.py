"""The review stage: which exchanges go to review, in which queue, and why.

A decision that flags an exchange sends it to the queue each flagging rule names (or the
context's default queue); a share of unflagged answered traffic (``review.sample_rate``) is
sampled into the default queue for oversight, so that what the rules miss is seen too. The
item keeps why it is there: the rule ids, or "sampled". A shadow rule that would have flagged
(its action is flag, or it names a queue) sends the exchange to review the same way: its
reviews are how the rule is measured before it acts.

The stage runs when the exchange has ended and only chooses the queues; the items' rows are
made with the exchange's own (``ReviewRoute.row``, in the recorder's task) and written in the
same transaction. An exchange made for a review (an item's alternative) goes nowhere: its
reviewer is already looking. An embeddings request has no answer: one goes to review only
when a rule flags its inputs (the reviewer judges the rules), never by sampling, which is there
to judge answers.
"""

from __future__ import annotations

import random

from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.review_route import ReviewRoute
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.review.states import Reason
from gateway.review.views import EMBEDDINGS

FALLBACK_QUEUE = "review"


def route_to_review(record: ExchangeRecord, rng: random.Random) -> None:
    """The review stage: which queues (if any) the ended exchange goes to."""
    ctx = record.ctx
    if ctx is not None and record.made_for is None:
        status = str(record.status)
        record.reviews = choose(ctx.policy, ctx.decision, status, record.endpoint, rng)


def choose(
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
        return [
            ReviewRoute(q, Reason.FLAGGED, tuple(sorted(set(rules)))) for q, rules in queues.items()
        ]
    answered = status == "ok" and endpoint != EMBEDDINGS
    if answered and review.sample_rate > 0 and rng.random() < review.sample_rate:
        return [ReviewRoute(default, Reason.SAMPLED)]
    return []


