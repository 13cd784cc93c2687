"""Scoring the ``pii`` detector against span-labelled records in presidio-research's format.

Each record holds ``full_text`` and ``spans`` (``entity_type``, ``start_position``,
``end_position``). A gold span counts as found (true positive) when a finding of the mapped
entity overlaps it; a finding that overlaps no gold span of its entity is a false positive.
Run ``python -m gateway.evaluation.pii FILE…`` for a table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.checks.base import Check, Finding
from gateway.checks.pii import PiiCheck

PRESIDIO_TYPES = MappingProxyType(
    {
        "EMAIL_ADDRESS": "email",
        "PHONE_NUMBER": "phone",
        "CREDIT_CARD": "credit_card",
        "IBAN_CODE": "iban",
        "IP_ADDRESS": "ip_address",
        "US_SSN": "us_ssn",
    }
)

Scores = dict[str, dict[str, float]]


def gold_spans(record: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    return [
        (PRESIDIO_TYPES[span["entity_type"]], span["start_position"], span["end_position"])
        for span in record["spans"]
        if span["entity_type"] in PRESIDIO_TYPES
    ]


def _overlap(finding: Finding, start: int, end: int) -> bool:
    return finding.start < end and start < finding.end


def _ratio(part: float, whole: float) -> float:
    # No predictions (or no gold spans) is a perfect score for that side, not a division error.
    return part / whole if whole else 1.0


def evaluate(records: Iterable[Mapping[str, Any]], check: Check | None = None) -> Scores:
    """Per entity: ``tp`` (gold spans found), ``fp``, ``fn``, ``precision`` and ``recall``."""
    detector = check if check is not None else PiiCheck(list(PRESIDIO_TYPES.values()))
    counts = {entity: {"tp": 0, "fp": 0, "fn": 0} for entity in PRESIDIO_TYPES.values()}
    for record in records:
        gold = gold_spans(record)
        findings = [f for f in detector.find(record["full_text"]) if f.label in counts]
        for entity, start, end in gold:
            hit = any(f.label == entity and _overlap(f, start, end) for f in findings)
            counts[entity]["tp" if hit else "fn"] += 1
        for finding in findings:
            if not any(
                entity == finding.label and _overlap(finding, start, end)
                for entity, start, end in gold
            ):
                counts[finding.label]["fp"] += 1
    scores: Scores = {}
    for entity, count in counts.items():
        tp, fp, fn = count["tp"], count["fp"], count["fn"]
        scores[entity] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
        }
    return scores


def load_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return records


def format_scores(scores: Scores) -> str:
    lines = [f"{'entity':<12} {'tp':>5} {'fp':>5} {'fn':>5} {'precision':>9} {'recall':>7}"]
    for entity, score in scores.items():
        lines.append(
            f"{entity:<12} {score['tp']:>5.0f} {score['fp']:>5.0f} {score['fn']:>5.0f}"
            f" {score['precision']:>9.3f} {score['recall']:>7.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    for name in argv:
        print(name)
        print(format_scores(evaluate(load_records(Path(name)))))


if __name__ == "__main__":
    main(sys.argv[1:])
