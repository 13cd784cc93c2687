"""Judging texts by a compiled policy: which rules fired, what will be enforced, what refuses.

Nothing here edits a request or an answer: the pipeline's stages apply what is judged here
(``gateway.pipeline.stages``). ``policy evaluate`` (tests, explain, eval) judges the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway.errors import PolicyViolation
from gateway.policy.actions import Action, Enforced, Stage
from gateway.policy.compiled import CompiledPolicy, CompiledRule
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.engine import TextRef, run_rules

Fired = list[tuple[CompiledRule, Outcome]]
#: (message or choice index, content part) → the spans to replace there: (start, end, text)
Spans = dict[tuple[int, int | None], list[tuple[int, int, str]]]
#: what a block makes moot: nothing goes through to redact or to route
_MOOT = (Action.REDACT, Action.ROUTE)


@dataclass(slots=True)
class InputVerdict:
    """The input stage's judgement: a refusal to answer with, or what to change and where
    to route. A block that errs was raised as a ``PolicyViolation`` instead."""

    fired: Fired = field(default_factory=list)
    refusal: str | None = None
    route: str | None = None

    @property
    def spans(self) -> Spans:
        return redaction_spans(self.fired)


def scope_label(topic: str | None) -> str:
    """The scope's evidence label: ``nearest:<topic>``, or ``no-topic-near`` when no topic
    shares a content word with the text (what ``gateway policy explain`` says in words)."""
    return f"nearest:{topic}" if topic is not None else "no-topic-near"


def check_scope(policy: CompiledPolicy, refs: list[TextRef], decision: Decision) -> str | None:
    """The refusal text when the request is out of scope and the policy refuses it."""
    scope, classifier = policy.policy.scope, policy.scope
    users = [ref for ref in refs if ref.role == "user"]
    if classifier is None or not users:
        return None
    last = users[-1]
    started = time.perf_counter()
    topic, score = classifier.classify(last.text)
    decision.timings["input:scope.topic"] = (time.perf_counter() - started) * 1000
    if score >= scope.threshold:
        return None
    refuses = scope.out_of_scope == "refuse"
    outcome = Outcome(
        "scope.topic",
        "topic_scope",
        Stage.INPUT,
        Action.BLOCK if refuses else Action.FLAG,
        [Evidence(last.message, 0, len(last.text), scope_label(topic), score, last.part)],
        enforced=Action.BLOCK if refuses else Action.FLAG,
        why=f"Out of scope for this deployment: {policy.policy.purpose.strip()}",
    )
    decision.add(outcome)
    if not refuses:
        return None
    if scope.refuse_as == "error":
        raise PolicyViolation("scope.topic", scope.refusal_text, Stage.INPUT)
    return scope.refusal_text


def refusal_text(rule: CompiledRule, policy: CompiledPolicy) -> str | None:
    """What a blocking rule answers in the model's place; None when it blocks with an error."""
    if rule.spec.block_as == "error":
        return None
    return rule.spec.message or policy.policy.scope.refusal_text


def block(rule: CompiledRule, stage: str, policy: CompiledPolicy) -> str:
    """Raise the rule's error, or return its refusal text."""
    refusal = refusal_text(rule, policy)
    if refusal is None:
        raise PolicyViolation(rule.id, rule.spec.why, stage)
    return refusal


def mark_enforced(fired: Fired, *, block_moots: bool = True) -> CompiledRule | None:
    """Mark what will be enforced; return the blocking rule, if any. Where a block stops
    everything (``block_moots``), a redaction or a route is moot and is not marked."""
    blocking = next((rule for rule, o in fired if rule.action == Action.BLOCK), None)
    for rule, outcome in fired:
        if blocking is not None and block_moots and rule.action in _MOOT:
            continue
        outcome.enforced = rule.action
    return blocking


def moot(fired: Fired) -> None:
    """Nothing goes upstream: redactions and routes were not carried out."""
    for rule, outcome in fired:
        if rule.action in _MOOT:
            outcome.enforced = Enforced.NONE


def redaction_spans(fired: Fired) -> Spans:
    spans: Spans = {}
    for rule, outcome in fired:
        if rule.action != Action.REDACT:
            continue
        for e in outcome.evidence:
            replacement = rule.spec.replacement.format(label=e.label)
            spans.setdefault((e.message, e.part), []).append((e.start, e.end, replacement))
    return spans


def judge_input(
    policy: CompiledPolicy, refs: list[TextRef], decision: Decision, *, scope: bool = True
) -> InputVerdict:
    """The input rules, then the topic scope (so a refused request still shows every rule it
    broke). Raises PolicyViolation for a block that errs."""
    fired = run_rules(policy, decision, Stage.INPUT, refs)
    blocking = mark_enforced(fired)
    if blocking is not None:
        return InputVerdict(fired, block(blocking, Stage.INPUT, policy))
    refusal = check_scope(policy, refs, decision) if scope else None
    if refusal is not None:
        moot(fired)
        return InputVerdict(fired, refusal)
    route = next((r.spec.route_to for r, _ in fired if r.action == Action.ROUTE), None)
    return InputVerdict(fired, None, route)
