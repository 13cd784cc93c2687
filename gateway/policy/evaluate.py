"""Running a policy on a bare text, outside any request: for tests, explain and eval."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.policy.actions import Action, Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.engine import TextRef, run_rules
from gateway.policy.judge import block, judge_input, mark_enforced
from gateway.policy.limits import check_sizes
from gateway.policy.scope import build_scope, too_short

STOPPING = (Action.BLOCK,)


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    action: str
    error: str | None = None

    @property
    def stopped(self) -> bool:
        return self.action in STOPPING

    def fired(self, *, rules_only: bool = False) -> list[str]:
        return [
            o.rule
            for o in self.decision.fired
            if not rules_only or not o.rule.startswith(("scope.", "limits."))
        ]


def without_scope(policy: CompiledPolicy) -> CompiledPolicy:
    """The same policy with its topic scope off: to measure its rules alone."""
    return dataclasses.replace(policy, scope=None)


@dataclass(frozen=True, slots=True)
class ScopeReading:
    """How a policy's topic scope reads a text: its nearest topic (if any) and that score."""

    topics: int
    out_of_scope: str
    threshold: float
    min_words: int
    judged: bool
    topic: str | None = None
    score: float = 0.0

    @property
    def in_scope(self) -> bool:
        return not self.judged or self.score >= self.threshold


def read_scope(policy: CompiledPolicy, text: str) -> ScopeReading:
    """The scope's reading of a text, also where the policy does not enforce its scope."""
    scope = policy.policy.scope
    reading = ScopeReading(
        len(scope.topics), scope.out_of_scope, scope.threshold, scope.min_words, judged=False
    )
    if not scope.topics or too_short(scope, text):
        return reading
    classifier = policy.scope or build_scope(scope.model_copy(update={"out_of_scope": "flag"}))
    assert classifier is not None  # there are topics
    topic, score = classifier.classify(text)
    return dataclasses.replace(reading, judged=True, topic=topic, score=score)


def evaluate(policy: CompiledPolicy, text: str, stage: str = Stage.INPUT) -> Verdict:
    """Judge a text as a user's message (input) or as an answer (output), as a request would
    be judged: the same rules, limits and scope, nothing sent anywhere."""
    decision = Decision(policy.revision, policy.context)
    try:
        if stage == Stage.OUTPUT:
            refs = [TextRef(0, None, "assistant", text)]
            fired = run_rules(policy, decision, Stage.OUTPUT, refs)
            blocking = mark_enforced(fired, block_moots=False)
            if blocking is not None:
                block(blocking, Stage.OUTPUT, policy)  # raises for a block that errs
            blocked = blocking is not None
        else:
            refs = [TextRef(0, None, "user", text)]
            check_sizes(policy, 1, 1, refs, decision)
            blocked = judge_input(policy, refs, decision).refusal is not None
    except GatewayError as exc:
        action = Action.BLOCK if exc.status < 500 else "error"
        return Verdict(decision, action, exc.message)
    return Verdict(decision, Action.BLOCK if blocked else decision.enforced)
