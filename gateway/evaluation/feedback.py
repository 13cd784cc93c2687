"""Reviewers' judgments as labels for the detectors: per rule, was it right to fire (or not)?

A judgment says per flagged rule whether it fired rightly (``true_positive`` or
``false_positive``). Every rule that ran on an exchange is in its decision's timings, so a rule
that ran and stayed silent on an exchange a reviewer called acceptable was right not to fire;
on one called a violation nobody said which rule should have fired, so that is left unlabelled.
Only standing judgments count (a correction replaces what it supersedes). Human and model
judgments are kept apart: model ones are read only when asked for by ``kinds``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from gateway.db.models import Exchange, Finding, Judgment, ReviewItem
from gateway.db.session import Sessions
from gateway.policy.actions import Enforced, Mode, Stage
from gateway.records.views import text_at
from gateway.review.agreement import alpha
from gateway.review.states import Purpose, ReviewerKind, RuleVerdict, Verdict

Z95 = 1.959963984540054
#: a finding whose check failed is no finding of the rule's
_FAILED = (Enforced.FAIL_OPEN, Enforced.FAIL_CLOSED)


@dataclass(frozen=True)
class JudgedFinding:
    """One judgment's verdict on one rule of one exchange."""

    judgment_id: str
    exchange_id: str
    context: str
    rule: str
    fired: bool
    #: the rule was right (to fire, or to stay silent); None when the judgment does not say
    correct: bool | None
    reviewer: str
    reviewer_kind: str  # "human" or "model"
    guideline_revision: str | None
    policy_revision: str
    text: str | None  # the text the rule read, if the record kept it
    #: the stage the rule ran on (a ``both`` rule gives one finding per stage)
    stage: str = "input"
    #: the highest evidence score of the finding (None when the rule did not fire)
    score: float | None = None
    #: ``review``, or ``adjudication`` (a lead's verdict on a disagreement)
    purpose: str = "review"
    #: the rule ran in shadow mode on this exchange (recorded, not enforced)
    shadow: bool = False

    @property
    def label(self) -> int | None:
        """1 when the rule should have fired, 0 when not, None when the judgment does not say."""
        if self.correct is None:
            return None
        return int(self.fired == self.correct)


def _standing(judgments: list[Judgment]) -> list[Judgment]:
    replaced = {j.supersedes for j in judgments if j.supersedes}
    return [j for j in judgments if j.id not in replaced]


def _ran(decision: Any) -> list[tuple[str, str]]:
    """(stage, rule) of every rule that ran on the exchange, from the decision's timings."""
    timings = decision.get("timings_ms") if isinstance(decision, dict) else None
    pairs = []
    for key in timings or {}:
        stage, _, rule = str(key).partition(":")
        if stage in (Stage.INPUT, Stage.OUTPUT) and rule:
            pairs.append((stage, rule))
    return pairs


def _outcomes(decision: Any) -> dict[tuple[str, str], dict[str, Any]]:
    found = decision.get("outcomes") if isinstance(decision, dict) else None
    return {
        (str(o.get("stage")), str(o.get("rule"))): o
        for o in found or []
        if isinstance(o, dict) and o.get("evidence")
    }


def _read_text(exchange: Exchange, stage: str, outcome: dict[str, Any] | None) -> str | None:
    """The text the rule read: the message its first evidence is in; for a silent rule, the
    last user message (input) or the first choice (output)."""
    key = "messages" if stage == Stage.INPUT else "choices"
    if outcome is not None:
        first = outcome["evidence"][0]
        message = int(first.get("message", -1))
        if message >= 0:
            return text_at(
                exchange.request_body if stage == Stage.INPUT else exchange.response_body,
                key,
                message,
                first.get("part"),
            )
        return None
    if stage == Stage.OUTPUT:
        return text_at(exchange.response_body, key, 0, None)
    messages = (
        (exchange.request_body or {}).get("messages")
        if isinstance(exchange.request_body, dict)
        else None
    )
    users = [
        i for i, m in enumerate(messages or []) if isinstance(m, dict) and m.get("role") == "user"
    ]
    return text_at(exchange.request_body, key, users[-1], None) if users else None


def _correct(judgment: Judgment, rule: str, fired: bool) -> bool | None:
    """Where the rule fired, the reviewer's word on it; where it stayed silent (a ``both``
    rule may fire on one stage only), right when the whole exchange was acceptable."""
    if not fired:
        return True if judgment.verdict == Verdict.ACCEPTABLE else None
    said = (judgment.rule_verdicts or {}).get(rule)
    if said in (RuleVerdict.TRUE_POSITIVE, RuleVerdict.FALSE_POSITIVE):
        return bool(said == RuleVerdict.TRUE_POSITIVE)
    return None


def _threshold_scores(evidence: list[dict[str, Any]]) -> list[float]:
    """The scores a rule's threshold acts on: a model's (``source`` ``name@revision``) when a
    model found anything; none when only a cascade's first stage decided (its finding does
    not depend on the model's threshold); every score for a rule without sources."""
    sources = [str(e.get("source") or "") for e in evidence]
    if not any(sources):
        return [float(e.get("score", 1.0)) for e in evidence]
    return [
        float(e.get("score", 1.0)) for e, src in zip(evidence, sources, strict=True) if "@" in src
    ]


def _findings_of(
    judgment: Judgment, item: ReviewItem, exchange: Exchange, rule: str | None
) -> list[JudgedFinding]:
    outcomes = _outcomes(exchange.decision)
    found = []
    for stage, ran in _ran(exchange.decision):
        if rule is not None and ran != rule:
            continue
        outcome = outcomes.get((stage, ran))
        scores = _threshold_scores(outcome["evidence"]) if outcome else []
        found.append(
            JudgedFinding(
                judgment_id=judgment.id,
                exchange_id=exchange.id,
                context=item.context,
                rule=ran,
                fired=outcome is not None,
                correct=_correct(judgment, ran, outcome is not None),
                reviewer=judgment.reviewer_id,
                reviewer_kind=judgment.kind,
                guideline_revision=judgment.guideline_revision,
                policy_revision=item.policy_revision,
                text=_read_text(exchange, stage, outcome),
                stage=stage,
                score=max(scores) if scores else None,
                purpose=judgment.purpose,
                shadow=bool(outcome and outcome.get("mode") == Mode.SHADOW),
            )
        )
    return found


async def judged_findings(
    sessions: Sessions,
    context: str,
    rule: str | None = None,
    *,
    kinds: Collection[str] = (ReviewerKind.HUMAN,),
) -> list[JudgedFinding]:
    """Every standing judgment of the context's items by reviewers of ``kinds``, per rule that
    ran on the exchange (only ``rule`` when given), oldest judgment first."""
    query = (
        select(Judgment, ReviewItem, Exchange)
        .join(ReviewItem, ReviewItem.id == Judgment.item_id)
        .join(Exchange, Exchange.id == ReviewItem.exchange_id)
        .where(ReviewItem.context == context)
        .order_by(Judgment.created_at, Judgment.id)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    standing = {j.id for j in _standing([row[0] for row in rows])}
    found: list[JudgedFinding] = []
    for judgment, item, exchange in rows:
        if judgment.id in standing and judgment.kind in kinds:
            found.extend(_findings_of(judgment, item, exchange, rule))
    return found


def _resolve(group: Sequence[JudgedFinding]) -> int | None:
    """One label for one finding: a lead's adjudication, else the majority; None on a tie."""
    labelled = [f for f in group if f.label is not None]
    adjudicated = [f for f in labelled if f.purpose == Purpose.ADJUDICATION]
    if adjudicated:
        return adjudicated[-1].label
    ones = sum(1 for f in labelled if f.label == 1)
    zeros = len(labelled) - ones
    return None if ones == zeros else int(ones > zeros)


def _by_finding(
    judged: Sequence[JudgedFinding],
) -> dict[tuple[str, str, str], list[JudgedFinding]]:
    groups: dict[tuple[str, str, str], list[JudgedFinding]] = defaultdict(list)
    for finding in judged:
        groups[(finding.exchange_id, finding.rule, finding.stage)].append(finding)
    return groups


def provenance(group: Sequence[JudgedFinding]) -> dict[str, Any]:
    used = [f for f in group if f.label is not None]
    return {
        "exchange_id": group[0].exchange_id,
        "context": group[0].context,
        "rule": group[0].rule,
        "stage": group[0].stage,
        "fired": group[0].fired,
        "policy_revision": group[0].policy_revision,
        "judgments": [f.judgment_id for f in used],
        "reviewers": sorted({f.reviewer for f in used}),
        "reviewer_kinds": sorted({f.reviewer_kind for f in used}),
        "guideline_revisions": sorted({f.guideline_revision or "" for f in used} - {""}),
    }


def settled(judged: Sequence[JudgedFinding]) -> list[tuple[int, list[JudgedFinding]]]:
    """Per finding (exchange, rule, stage) whose judgments settle a label: the label and the
    judgments that gave one."""
    found = []
    for group in _by_finding(judged).values():
        label = _resolve(group)
        if label is not None:
            found.append((label, [f for f in group if f.label is not None]))
    return found


def labelled_examples(judged: Sequence[JudgedFinding]) -> list[tuple[str, int, dict[str, Any]]]:
    """(text, label, provenance) per judged finding whose text was kept and whose judgments
    agree on a label (1 = the rule should have fired); several judgments of one finding make
    one example, with all their ids."""
    return [
        (group[0].text, label, provenance(group))
        for label, group in settled(judged)
        if group[0].text
    ]


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion; None when nothing was counted."""
    if total == 0:
        return None
    share = successes / total
    centre = share + z * z / (2 * total)
    spread = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    scale = 1 + z * z / total
    return (max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale))


def _rule_alpha(judged: Sequence[JudgedFinding]) -> float | None:
    return alpha(
        (f"{f.exchange_id}:{f.stage}", f.reviewer, float(f.label))
        for f in judged
        if f.purpose == Purpose.REVIEW and f.label is not None
    )


def precision_row(rule: str, fired_total: int, judged: Sequence[JudgedFinding]) -> dict[str, Any]:
    """The judged precision of one rule from its fired, judged findings."""
    fired = [f for f in judged if f.fired]
    labels = [(_resolve(g), g) for g in _by_finding(fired).values()]
    resolved = [(label, g) for label, g in labels if label is not None]
    right = sum(1 for label, _ in resolved if label == 1)
    interval = wilson(right, len(resolved))
    used = [f for _, g in resolved for f in g if f.label is not None]
    return {
        "rule": rule,
        "fired": fired_total,
        "judged": len(resolved),
        "judged_right": right,
        "unresolved": len(labels) - len(resolved),
        "precision": right / len(resolved) if resolved else None,
        "ci95": list(interval) if interval else None,
        "agreement_alpha": _rule_alpha(fired),
        "shadow": any(f.shadow for f in fired),
        "judgments": sorted({f.judgment_id for f in used}),
        "reviewers": sorted({f.reviewer for f in used}),
        "guideline_revisions": sorted({f.guideline_revision or "" for f in used} - {""}),
    }


async def _fired_counts(sessions: Sessions, context: str) -> dict[str, int]:
    query = select(Finding.rule, Finding.exchange_id).where(
        Finding.context == context, Finding.enforced.notin_(_FAILED)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    exchanges: dict[str, set[str]] = defaultdict(set)
    for rule, exchange_id in rows:
        exchanges[rule].add(exchange_id)
    return {rule: len(ids) for rule, ids in exchanges.items()}


async def rule_precision(
    sessions: Sessions, context: str, *, kinds: Collection[str] = (ReviewerKind.HUMAN,)
) -> list[dict[str, Any]]:
    """Per rule of the context: how often it fired (exchanges recorded with its finding), how
    many fired findings reviewers judged and judged right, the precision with its 95% Wilson
    interval, Krippendorff's alpha between reviewers (None below two on a finding), and the
    judgment ids used."""
    fired_total = await _fired_counts(sessions, context)
    judged = await judged_findings(sessions, context, kinds=kinds)
    per_rule: dict[str, list[JudgedFinding]] = defaultdict(list)
    for finding in judged:
        per_rule[finding.rule].append(finding)
    rules = sorted(set(fired_total) | {f.rule for f in judged if f.fired})
    return [precision_row(rule, fired_total.get(rule, 0), per_rule.get(rule, [])) for rule in rules]
