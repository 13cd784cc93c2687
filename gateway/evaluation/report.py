"""What a compiled policy does on labelled datasets: per rule, per dataset, per language.

Each row runs through the policy's real compiled rules (``gateway.policy.evaluate``, the same
admit and review path a request takes), so the figures are the policy's, not a copy's.
Both sides are always counted together: the harmful side caught, the benign side wrongly
stopped, each with its 95% Wilson interval. A learned rule's model (``name@revision``) is
read from its findings' evidence and from the check itself, and reported beside the policy
revision. Span-labelled PII sets are measured per ``pii`` rule by the spans it finds.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.evaluation import pii
from gateway.evaluation.datasets import DatasetSpec, Row, load_rows
from gateway.evaluation.stats import Share
from gateway.policy.compiled import CompiledPolicy, CompiledRule
from gateway.policy.evaluate import Verdict, evaluate, without_scope

ALL = "all"


@dataclass(slots=True)
class _Tally:
    """Counts keyed by (group, side): group is ``all``, ``lang:<code>`` or ``by:<value>``."""

    sides: Counter[tuple[str, str]] = field(default_factory=Counter)
    stopped: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sources: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: rows on which a check failed (its rule's on_error decided) or the gateway failed
    errors: int = 0
    error_notes: Counter[str] = field(default_factory=Counter)

    def add(self, row: Row, verdict: Verdict) -> None:
        side = "harmful" if row.harmful else "benign"
        rules = {o.rule for o in verdict.decision.fired}
        for outcome in verdict.decision.fired:
            self.sources[outcome.rule].update(e.source for e in outcome.evidence if e.source)
        failed = [f"{o.rule}: {o.error}" for o in verdict.decision.outcomes if o.error]
        if verdict.action == "error" or failed:
            self.errors += 1
            self.error_notes.update(failed or [verdict.error or "gateway error"])
        groups = [ALL]
        if row.lang:
            groups.append(f"lang:{row.lang}")
        if row.group:
            groups.append(f"by:{row.group}")
        for group in groups:
            self.sides[(group, side)] += 1
            self.stopped[(group, side)] += verdict.stopped
            for rule in rules:
                self.fired[(group, rule, side)] += 1

    def groups(self, kind: str) -> list[str]:
        """The languages (``lang``) or the values of the ``by`` column, as they were counted."""
        return sorted(g for g in {g for g, _ in self.sides} if g.startswith(f"{kind}:"))

    def rules(self, order: Sequence[str]) -> list[str]:
        fired = {rule for _, rule, _ in self.fired}
        rank = {rule: index for index, rule in enumerate(order)}
        return sorted(fired, key=lambda r: (rank.get(r, len(rank)), r))

    def summary(self, group: str, rules: Sequence[str]) -> dict[str, Any]:
        harmful, benign = self.sides[(group, "harmful")], self.sides[(group, "benign")]
        return {
            "harmful": harmful,
            "benign": benign,
            "caught": Share(self.stopped[(group, "harmful")], harmful).as_dict(),
            "wrongly_stopped": Share(self.stopped[(group, "benign")], benign).as_dict(),
            "rules": [
                {
                    "rule": rule,
                    "caught": Share(self.fired[(group, rule, "harmful")], harmful).as_dict(),
                    "wrongly_fired": Share(self.fired[(group, rule, "benign")], benign).as_dict(),
                }
                for rule in rules
            ],
        }


def declared_source(rule: CompiledRule) -> str | None:
    """The model behind a learned rule's check (``name@revision``), if the check exposes one."""
    source = getattr(rule.check, "source", None)
    if isinstance(source, str) and "@" in source:
        return source
    for holder in (rule.check, getattr(rule.check, "model", None)):
        info = getattr(holder, "info", None)
        name, revision = getattr(info, "name", None), getattr(info, "revision", None)
        if isinstance(name, str) and isinstance(revision, str):
            return f"{name}@{revision}"
    return None


def rule_table(policy: CompiledPolicy, seen: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Each rule's detector, action, mode and stage, and the models its findings came from."""
    table = {}
    for rule in policy.rules:
        declared = declared_source(rule)
        sources = set(seen.get(rule.id, ())) | ({declared} if declared else set())
        table[rule.id] = {
            "detector": rule.spec.detector,
            "action": rule.spec.action,
            "mode": getattr(rule.spec, "mode", "enforce"),
            "stage": rule.spec.stage,
            "models": sorted(s for s in sources if "@" in s),
            #: cascade stages that decided (``heuristic:injection``), not models
            "stages": sorted(s for s in sources if "@" not in s),
        }
    return table


def run_dataset(
    policy: CompiledPolicy, spec: DatasetSpec, seen: dict[str, set[str]]
) -> dict[str, Any]:
    """One dataset's figures; the models seen in its findings are added to ``seen``."""
    rows = load_rows(spec)
    head = {
        "name": spec.title,
        "path": os.path.relpath(spec.path.resolve()),
        "source": spec.source,
        "license": spec.license,
        "stage": spec.stage,
        "scope": spec.scope,
        "rows": len(rows),
    }
    if rows and "spans" in rows[0].raw:
        return {**head, "kind": "spans", **span_figures(policy, rows, spec.stage)}
    target = policy if spec.scope else without_scope(policy)
    tally = _Tally()
    for row in rows:
        tally.add(row, evaluate(target, row.text, spec.stage))
    for rule, sources in tally.sources.items():
        seen.setdefault(rule, set()).update(sources)
    rules = tally.rules([r.id for r in policy.rules])
    return {
        **head,
        "kind": "labelled",
        "errors": tally.errors,
        "error_examples": [note for note, _ in tally.error_notes.most_common(3)],
        **tally.summary(ALL, rules),
        "languages": {g[5:]: tally.summary(g, rules) for g in tally.groups("lang")},
        "by": spec.by,
        "groups": {g[3:]: tally.summary(g, rules) for g in tally.groups("by")},
    }


def span_figures(policy: CompiledPolicy, rows: Iterable[Row], stage: str) -> dict[str, Any]:
    """Per ``pii`` rule: the records holding its entities it fires on, those without them it
    fires on anyway, and the labelled spans it finds (presidio-research's format)."""
    records = [row.raw for row in rows]
    figures = []
    for rule in policy.rules_for(stage):
        if rule.spec.detector != "pii":
            continue
        entities = set(rule.spec.detect["pii"]) & set(pii.PRESIDIO_TYPES.values())
        if not entities:
            continue
        holding = [any(e in entities for e, _, _ in pii.gold_spans(r)) for r in records]
        hits = [bool(rule.find(r["full_text"])) for r in records]
        scores = pii.evaluate(records, rule.check)
        found = sum(int(scores[e]["tp"]) for e in entities)
        gold = found + sum(int(scores[e]["fn"]) for e in entities)
        figures.append(
            {
                "rule": rule.id,
                "entities": sorted(entities),
                "caught": _share(h for h, held in zip(hits, holding, strict=True) if held),
                "wrongly_fired": _share(
                    h for h, held in zip(hits, holding, strict=True) if not held
                ),
                "spans_found": Share(found, gold).as_dict(),
                "false_spans": sum(int(scores[e]["fp"]) for e in entities),
            }
        )
    return {"rules": figures, "languages": {}, "by": None, "groups": {}}


def _share(flags: Iterable[bool]) -> dict[str, Any]:
    values = list(flags)
    return Share(sum(values), len(values)).as_dict()


def context_report(
    policy: CompiledPolicy, specs: Sequence[DatasetSpec], command: str, generated: str
) -> dict[str, Any]:
    """The whole report for one context: its revision, its rules and their models, each dataset."""
    seen: dict[str, set[str]] = {}
    datasets = [run_dataset(policy, spec, seen) for spec in specs]
    return {
        "context": policy.context,
        "policy_revision": policy.revision,
        "policy_file": str(policy.path),
        "generated": generated,
        "command": command,
        "rules": rule_table(policy, seen),
        "datasets": datasets,
    }
