"""Inter-annotator agreement: Krippendorff's alpha per queue (verdicts) and per rule.

The ``krippendorff`` package takes a raters-by-items matrix (statsmodels takes items-by-raters:
the classic mix-up). Each reviewer's latest judgment of an item counts (corrections replace
what they supersede); "unsure" is a missing value, not a category. Alpha is None when it is
not computable (fewer than two reviewers on any item, or no variation at all).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import krippendorff
import numpy as np

from gateway.review.states import RuleVerdict, Verdict

VERDICT_CODES: dict[str, float] = {Verdict.ACCEPTABLE: 0.0, Verdict.VIOLATION: 1.0}
RULE_CODES: dict[str, float] = {RuleVerdict.TRUE_POSITIVE: 1.0, RuleVerdict.FALSE_POSITIVE: 0.0}


@dataclass(frozen=True, slots=True)
class Rating:
    item_id: str
    reviewer_id: str
    verdict: str
    rule_verdicts: dict[str, str]


def alpha(ratings: Iterable[tuple[str, str, float | None]]) -> float | None:
    """Nominal alpha from (item, reviewer, value) triples; None values are missing."""
    items: dict[str, int] = {}
    raters: dict[str, int] = {}
    cells: list[tuple[int, int, float]] = []
    for item, rater, value in ratings:
        if value is None:
            continue
        cells.append(
            (raters.setdefault(rater, len(raters)), items.setdefault(item, len(items)), value)
        )
    if len(raters) < 2 or not items:
        return None
    matrix = np.full((len(raters), len(items)), np.nan)
    for row, column, value in cells:
        matrix[row, column] = value
    paired = np.sum(~np.isnan(matrix), axis=0) >= 2
    if not paired.any() or len({v for _, _, v in cells}) < 2:
        return None
    result = float(
        krippendorff.alpha(reliability_data=matrix[:, paired], level_of_measurement="nominal")
    )
    return None if math.isnan(result) else result


def verdict_alpha(ratings: list[Rating]) -> float | None:
    return alpha((r.item_id, r.reviewer_id, VERDICT_CODES.get(r.verdict)) for r in ratings)


def rule_alphas(ratings: list[Rating]) -> dict[str, float | None]:
    rules = sorted({rule for r in ratings for rule in r.rule_verdicts})
    return {
        rule: alpha(
            (r.item_id, r.reviewer_id, RULE_CODES.get(r.rule_verdicts.get(rule, "")))
            for r in ratings
        )
        for rule in rules
    }
