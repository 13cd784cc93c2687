"""Where the review stage sends an exchange: a queue, why, and which rules; and the review
item's row it becomes, written with the exchange's own."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from gateway.clock import now
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.review.states import ItemState, Reason


@dataclass(frozen=True, slots=True)
class ReviewRoute:
    queue: str
    reason: Reason
    rules: tuple[str, ...] = ()

    def row(self, exchange_id: str, policy: CompiledPolicy, decision: Decision) -> dict[str, Any]:
        guideline = policy.guidelines.get(self.queue)
        config = policy.policy.review.queues.get(self.queue)
        return {
            "id": "rvi_" + secrets.token_hex(10),
            "exchange_id": exchange_id,
            "context": policy.context,
            "queue": self.queue,
            "reason": str(self.reason),
            "rule_ids": list(self.rules),
            "policy_revision": decision.policy_revision,
            "guideline_revision": guideline.revision if guideline else None,
            "guideline_path": str(guideline.path) if guideline else None,
            "reviewers_needed": config.reviewers_per_item if config else 1,
            "judgments_done": 0,
            "state": str(ItemState.OPEN),
            "created_at": now(),
        }
