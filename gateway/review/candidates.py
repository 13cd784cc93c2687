"""Candidate test cases from reviewers' verdicts, for ``gateway policy test``.

A case says what the policy should have done where a reviewer says it did wrong:

- a rule judged a false positive: the text it fired on, expecting it not to fire;
- an exchange the policy blocked, judged acceptable: the blocked text, expecting none of the
  blocking rules to fire;
- an answer the policy let through, judged a violation: the answer, expecting a block.

Each is made of the text as recorded, which a redacted record keeps except for personal data
and secrets (``gateway/records/views.py``), so a case fails on the policy as it stands and
passes once the operator has changed the policy. A case that passes on the current revision
already is not offered as a case: it is listed apart, with why (the text the rule found was
removed from the record, or the policy has changed since).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.db.models import Exchange, Judgment, ReviewItem
from gateway.policy.actions import Action, Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.testcases import Case, run_case
from gateway.records.views import text_at
from gateway.review.states import Purpose, RuleVerdict, Verdict
from gateway.review.views import chat_bodies

Row = tuple[Judgment, ReviewItem, Exchange]


@dataclass(slots=True)
class Candidates:
    cases: list[dict[str, Any]] = field(default_factory=list)
    #: cases that pass on the current revision already, each with why it is not offered
    passing: list[dict[str, Any]] = field(default_factory=list)


def standing(judgments: list[Judgment]) -> list[Judgment]:
    """What speaks for an item: its latest adjudication, or else each reviewer's judgment
    that no later one of theirs supersedes."""
    replaced = {j.supersedes for j in judgments if j.supersedes}
    live = [j for j in judgments if j.id not in replaced]
    adjudicated = [j for j in live if j.purpose == Purpose.ADJUDICATION]
    return adjudicated[-1:] or [j for j in live if j.purpose == Purpose.REVIEW]


def _text_at(exchange: Exchange, stage: str, message: int, part: int | None) -> str | None:
    request, response = chat_bodies(exchange)  # evidence indexes refer to the chat view
    if stage == Stage.OUTPUT:
        return text_at(response, "choices", message, part)
    return text_at(request, "messages", message, part)


def _outcomes(exchange: Exchange) -> list[dict[str, Any]]:
    decision = exchange.decision if isinstance(exchange.decision, dict) else {}
    return [o for o in decision.get("outcomes") or [] if isinstance(o, dict)]


def _where(exchange: Exchange, rules: Iterable[str]) -> tuple[str, str] | None:
    """The stage and the text where the first of these rules found something."""
    wanted = set(rules)
    for outcome in _outcomes(exchange):
        if outcome.get("rule") not in wanted:
            continue
        stage = str(outcome.get("stage", "input"))
        for ev in outcome.get("evidence") or []:
            text = _text_at(exchange, stage, int(ev.get("message", -1)), ev.get("part"))
            if text:
                return stage, text
    return None


def _source(judgment: Judgment, item: ReviewItem) -> str:
    guideline = (judgment.guideline_revision or "none")[:12]
    return f"judgment {judgment.id} under guideline {guideline}, queue {item.queue}"


def _false_positives(
    judgment: Judgment, item: ReviewItem, exchange: Exchange
) -> list[dict[str, Any]]:
    cases = []
    for rule, verdict in (judgment.rule_verdicts or {}).items():
        found = _where(exchange, [rule]) if verdict == RuleVerdict.FALSE_POSITIVE else None
        if found is not None:
            stage, text = found
            cases.append(
                {
                    "name": f"reviewer judged '{rule}' a false positive on {exchange.id}",
                    stage: text,
                    "expect": {"not_fires": [rule]},
                    "source": _source(judgment, item),
                }
            )
    return cases


def _blocked_but_acceptable(
    judgment: Judgment, item: ReviewItem, exchange: Exchange
) -> list[dict[str, Any]]:
    outcomes = _outcomes(exchange)
    blocking = [str(o.get("rule")) for o in outcomes if o.get("enforced") == Action.BLOCK]
    acceptable = judgment.verdict == Verdict.ACCEPTABLE
    found = _where(exchange, blocking) if acceptable and blocking else None
    if found is None:
        return []
    stage, text = found
    return [
        {
            "name": f"reviewer judged {exchange.id} acceptable; the policy blocked it",
            stage: text,
            "expect": {"not_fires": blocking},
            "source": _source(judgment, item),
        }
    ]


def _allowed_but_violation(
    judgment: Judgment, item: ReviewItem, exchange: Exchange
) -> list[dict[str, Any]]:
    decision = exchange.decision if isinstance(exchange.decision, dict) else {}
    if judgment.verdict != Verdict.VIOLATION or decision.get("enforced") == Action.BLOCK:
        return []
    refused = exchange.error_type == "policy_refusal"  # the gateway's words, not the model's
    answer = None if refused else _text_at(exchange, Stage.OUTPUT, 0, None)
    if not answer:
        return []
    return [
        {
            "name": f"reviewer judged the answer on {exchange.id} a violation;"
            " the policy let it through",
            "output": answer,
            "expect": {"action": Action.BLOCK.value},  # plain: the case is written as YAML
            "source": _source(judgment, item),
        }
    ]


def cases_from(judgment: Judgment, item: ReviewItem, exchange: Exchange) -> list[dict[str, Any]]:
    return [
        *_false_positives(judgment, item, exchange),
        *_blocked_but_acceptable(judgment, item, exchange),
        *_allowed_but_violation(judgment, item, exchange),
    ]


def _why_passing(case: dict[str, Any], exchange: Exchange, policy: CompiledPolicy) -> str:
    decision = exchange.decision if isinstance(exchange.decision, dict) else {}
    judged = set(case["expect"].get("not_fires", []))
    removed = {r.get("rule") for r in decision.get("removed_from_record") or []}
    if judged & removed:
        return "the record does not keep the text these rules found (personal data or a secret)"
    if exchange.policy_revision != policy.revision:
        return (
            f"passes on the current revision {policy.short_revision} already"
            f" (the exchange was decided under {(exchange.policy_revision or '?')[:12]})"
        )
    return "passes on the current revision already"


def candidates(rows: Iterable[Row], policy: CompiledPolicy | None) -> Candidates:
    """The cases of every item's standing judgments, each once, checked against ``policy``."""
    by_item: dict[str, list[Row]] = {}
    for row in rows:
        by_item.setdefault(row[1].id, []).append(row)
    found = Candidates()
    seen: set[str] = set()
    for group in by_item.values():
        _, item, exchange = group[0]
        for judgment in standing([j for j, _, _ in group]):
            for case in cases_from(judgment, item, exchange):
                key = json.dumps({k: v for k, v in case.items() if k not in ("name", "source")})
                if key in seen:
                    continue
                seen.add(key)
                if policy is not None and not run_case(policy, Case.model_validate(case)):
                    why = _why_passing(case, exchange, policy)
                    found.passing.append({"name": case["name"], "why": why})
                else:
                    found.cases.append(case)
    return found
