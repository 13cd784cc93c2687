"""What the policy decided about one exchange, kept apart from what the gateway enforced.

One ``Decision`` per exchange, with an id and the policy revision, stamped on the record.
Each rule that ran leaves an outcome: whether it fired, on which spans (message, offsets),
how long its check took, and what was actually done about it.

A rule in shadow mode (``mode: shadow``) leaves an outcome like any other, marked
``mode: shadow`` and enforced ``shadow``: nothing was done about it. The verdict, what was
enforced, the flags and the warnings are the enforcing rules' alone; the shadow findings are
listed apart (``shadow``), and those that want a human still go to review (``to_review``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.actions import SEVERITY, Action, Enforced, Mode

_NOT_DONE = (Enforced.NONE, Enforced.SHADOW)


@dataclass(frozen=True, slots=True)
class Evidence:
    message: int
    start: int
    end: int
    label: str
    score: float = 1.0
    part: int | None = None
    #: the model (``name@revision``) or cascade stage that produced the finding, if any
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "message": self.message,
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "score": round(self.score, 4),
        }
        if self.part is not None:
            found["part"] = self.part
        if self.source is not None:
            found["source"] = self.source
        return found


@dataclass(slots=True)
class Outcome:
    """One rule (or scope limit) on one stage."""

    rule: str
    detector: str
    stage: str
    action: str
    evidence: list[Evidence] = field(default_factory=list)
    duration_ms: float = 0.0
    error: str | None = None
    enforced: str = Enforced.NONE  # or the Action carried out
    why: str = ""
    review: str | None = None
    note: str | None = None  # what the gateway could not do as the rule says, and why
    mode: str = Mode.ENFORCE  # or shadow: recorded (and reviewed), never enforced

    @property
    def fired(self) -> bool:
        return bool(self.evidence)

    @property
    def shadow(self) -> bool:
        return self.mode == Mode.SHADOW

    @property
    def wants_review(self) -> bool:
        return self.fired and (self.action == Action.FLAG or self.review is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "detector": self.detector,
            "stage": self.stage,
            "action": self.action,
            "enforced": self.enforced,
            "why": self.why,
            "review": self.review,
            "duration_ms": round(self.duration_ms, 4),
            "error": self.error,
            "evidence": [e.as_dict() for e in self.evidence],
            **({"note": self.note} if self.note else {}),
            **({"mode": self.mode} if self.shadow else {}),
        }


@dataclass(slots=True)
class Decision:
    policy_revision: str
    context: str
    id: str = field(default_factory=lambda: "dec_" + secrets.token_hex(16))
    outcomes: list[Outcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    disclosure: bool = False
    routed_to: str | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome.fired or outcome.error:
            self.outcomes.append(outcome)

    def mark(self) -> Callable[[], None]:
        """A way back to the decision as it is now: for work that is tried, then redone
        (``DetectorPool.evaluate``'s cached-only try)."""
        outcomes, timings = len(self.outcomes), len(self.timings)
        disclosure, routed_to = self.disclosure, self.routed_to

        def rewind() -> None:
            del self.outcomes[outcomes:]
            for key in list(self.timings)[timings:]:  # timing keys are added, never re-set
                del self.timings[key]
            self.disclosure, self.routed_to = disclosure, routed_to

        return rewind

    @property
    def fired(self) -> list[Outcome]:
        """Every rule that found something, shadow rules included (a redacted record removes
        what a sensitive shadow rule found too)."""
        return [o for o in self.outcomes if o.fired]

    @property
    def enforcing(self) -> list[Outcome]:
        """The fired outcomes of enforcing rules: the ones the verdict is made of."""
        return [o for o in self.fired if not o.shadow]

    @property
    def shadow(self) -> list[Outcome]:
        """The fired outcomes of shadow rules: recorded, never enforced."""
        return [o for o in self.fired if o.shadow]

    @property
    def verdict(self) -> str:
        """The most severe action the enforcing rules call for, whatever was enforced."""
        actions = [o.action for o in self.enforcing]
        return max(actions, key=lambda a: SEVERITY.get(a, 0), default=Action.ALLOW)

    @property
    def enforced(self) -> str:
        done = [o.enforced for o in self.outcomes if o.enforced not in _NOT_DONE]
        return max(done, key=lambda a: SEVERITY.get(a, 0), default=Action.ALLOW)

    @property
    def flagged(self) -> list[Outcome]:
        """Enforcing outcomes that want a human: flags, and any rule naming a review queue."""
        return [o for o in self.enforcing if o.wants_review]

    @property
    def to_review(self) -> list[Outcome]:
        """Every outcome that sends the exchange to review: the flagged ones and the shadow
        ones that would have been flagged (a shadow rule is measured by its reviews)."""
        return [o for o in self.fired if o.wants_review]

    @property
    def warnings(self) -> list[str]:
        return [o.rule for o in self.enforcing if o.action == Action.WARN]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy_revision": self.policy_revision,
            "context": self.context,
            "verdict": self.verdict,
            "enforced": self.enforced,
            "disclosure": self.disclosure,
            "routed_to": self.routed_to,
            "flagged": [o.rule for o in self.flagged],
            "shadow": [o.rule for o in self.shadow],
            "outcomes": [o.as_dict() for o in self.outcomes],
            "timings_ms": {k: round(v, 4) for k, v in self.timings.items()},
        }
