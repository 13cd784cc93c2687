"""Running a compiled policy's rules over texts: findings, timings, failures.

The engine knows nothing of HTTP: it takes texts with their positions in the exchange and
fills a ``Decision``. What to do about the findings is judged by ``gateway.policy.judge``
and applied by the pipeline's stages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# re-exported for the pipeline, until its stages import it from gateway.checks.spans
from gateway.errors import PolicyUnavailable
from gateway.policy.actions import Enforced, Mode, OnError, Stage
from gateway.policy.compiled import CompiledPolicy, CompiledRule, text_key
from gateway.policy.decision import Decision, Evidence, Outcome


@dataclass(frozen=True, slots=True)
class TextRef:
    """A piece of text in the exchange: a message (or choice) index and a content part."""

    message: int
    part: int | None
    role: str
    text: str
    #: the text's digest, which every rule's memo is keyed by: worked out once, not per rule
    key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", text_key(self.text))


def message_texts(messages: Iterable[Any]) -> list[TextRef]:
    refs = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role")), message.get("content")
        if isinstance(content, str):
            refs.append(TextRef(index, None, role, content))
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    refs.append(TextRef(index, part_index, role, part["text"]))
    return refs


def run_rules(
    policy: CompiledPolicy, decision: Decision, stage: str, refs: list[TextRef]
) -> list[tuple[CompiledRule, Outcome]]:
    """Run every rule of a stage; return the enforcing ones that fired. A failing check fails
    closed (PolicyUnavailable) unless its rule says ``on_error: fail_open``; the decision says
    which. A shadow rule's findings and failures are recorded, never returned or raised."""
    fired = []
    for rule in policy.rules_for(stage):
        outcome = new_outcome(rule, stage)
        started = time.perf_counter()
        try:
            outcome.evidence = _evidence(rule, stage, refs)
        except Exception as exc:  # a detector's bug must not become a silent allow
            outcome.error = f"{type(exc).__name__}: {exc}"[:500]
            outcome.enforced = failure_enforced(rule)
        elapsed = (time.perf_counter() - started) * 1000
        outcome.duration_ms = elapsed
        decision.timings[f"{stage}:{rule.id}"] = elapsed
        decision.add(outcome)
        if outcome.enforced == Enforced.FAIL_CLOSED:
            raise PolicyUnavailable(
                f"A check of the deployment's policy failed (rule '{rule.id}'); "
                "the request was not processed.",
                headers={"retry-after": "1"},
            )
        if outcome.fired and not outcome.shadow:
            fired.append((rule, outcome))
    return fired


def new_outcome(rule: CompiledRule, stage: str) -> Outcome:
    """A rule's outcome before it ran; a shadow rule's says from the start that nothing will
    be enforced."""
    outcome = Outcome(
        rule.id,
        rule.spec.detector,
        stage,
        rule.spec.action,
        why=rule.spec.why,
        review=rule.spec.review,
        mode=rule.spec.mode,
    )
    if outcome.shadow:
        outcome.enforced = Enforced.SHADOW
    return outcome


def failure_enforced(rule: CompiledRule) -> str:
    """What a failing check leaves enforced: a shadow rule never fails a request closed."""
    if rule.mode == Mode.SHADOW:
        return Enforced.SHADOW
    if rule.on_error == OnError.FAIL_OPEN:
        return Enforced.FAIL_OPEN
    return Enforced.FAIL_CLOSED


def _evidence(rule: CompiledRule, stage: str, refs: list[TextRef]) -> list[Evidence]:
    roles = rule.spec.roles
    found = []
    for ref in refs:
        if stage == Stage.INPUT and ref.role not in roles:
            continue
        for f in rule.find(ref.text, ref.key):
            found.append(
                Evidence(ref.message, f.start, f.end, f.label, f.score, ref.part, f.source)
            )
    return found
