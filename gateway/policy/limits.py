"""Judging a request's sizes by its context's limits: a limit that refuses is recorded as a
``limit`` outcome and raised as a 4xx. (Clamping a body is the pipeline's limits stage.)"""

from __future__ import annotations

import math

from gateway.errors import InvalidRequest
from gateway.policy.actions import Action, Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.engine import TextRef


def limit_outcome(
    decision: Decision, rule: str, label: str, action: Action = Action.BLOCK
) -> Outcome:
    outcome = Outcome(
        rule,
        "limit",
        Stage.INPUT,
        action,
        [Evidence(-1, 0, 0, label)],
        enforced=action,
        why=f"the context's {rule} limit",
    )
    decision.add(outcome)
    return outcome


def estimate_tokens(refs: list[TextRef]) -> int:
    # About four characters a token for English text: an estimate, stated as such in the docs.
    return math.ceil(sum(len(ref.text) for ref in refs) / 4)


def exceeds(decision: Decision, rule: str, param: str, value: int, limit: int) -> InvalidRequest:
    """The limit's outcome, recorded, and the error to raise."""
    limit_outcome(decision, rule, f"{param}:{value}>{limit}")
    return InvalidRequest(
        f"'{param}' exceeds this deployment's limit ({value} > {limit}).",
        param=param,
        code="limit_exceeded",
    )


def check_sizes(
    policy: CompiledPolicy, messages: int, n: int, refs: list[TextRef], decision: Decision
) -> None:
    """The chat limits on messages, choices and estimated input tokens."""
    limits = policy.policy.limits
    checks = (
        ("limits.max_messages", "messages", limits.max_messages, messages),
        ("limits.max_n", "n", limits.max_n, n),
        ("limits.max_input_tokens", "messages", limits.max_input_tokens, estimate_tokens(refs)),
    )
    for rule, param, limit, value in checks:
        if limit is not None and value > limit:
            raise exceeds(decision, rule, param, value, limit)
