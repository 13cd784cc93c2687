"""Krippendorff's alpha against values computed by hand (nominal data)."""

from __future__ import annotations

import pytest

from gateway.review.agreement import Rating, alpha, rule_alphas, verdict_alpha


def test_two_raters_four_items_by_hand() -> None:
    # Coincidences: o00 = 4, o11 = 2, o01 = o10 = 1; n0 = 5, n1 = 3, n = 8.
    # D_o = 2/8, D_e = 2*5*3 / (8*7) = 30/56, alpha = 1 - (2/8) / (30/56) = 8/15.
    ratings = [
        ("i1", "A", 1.0),
        ("i2", "A", 1.0),
        ("i3", "A", 0.0),
        ("i4", "A", 0.0),
        ("i1", "B", 1.0),
        ("i2", "B", 0.0),
        ("i3", "B", 0.0),
        ("i4", "B", 0.0),
    ]
    assert alpha(ratings) == pytest.approx(8 / 15)


def test_missing_values_and_three_raters_by_hand() -> None:
    # Items: i1 (A=1, B=1, C=1), i2 (A=0, B=1), i3 (A=0, B=0, C=missing).
    # Pairable values: i1 three 1s (m=3) gives o11 += 6 * 1/2 = 3; i2 (m=2) o01 = o10 = 1;
    # i3 (m=2) o00 += 2. So o00 = 2, o11 = 3, o01 = o10 = 1; n0 = 3, n1 = 4, n = 7.
    # D_o = 2/7; D_e = 2*3*4 / (7*6) = 24/42; alpha = 1 - (2/7)/(24/42) = 1 - 0.5 = 0.5.
    ratings = [
        ("i1", "A", 1.0),
        ("i1", "B", 1.0),
        ("i1", "C", 1.0),
        ("i2", "A", 0.0),
        ("i2", "B", 1.0),
        ("i3", "A", 0.0),
        ("i3", "B", 0.0),
        ("i3", "C", None),
    ]
    assert alpha(ratings) == pytest.approx(0.5)


def test_perfect_agreement_is_one_and_no_overlap_is_not_computable() -> None:
    assert alpha(
        [("i1", "A", 1.0), ("i1", "B", 1.0), ("i2", "A", 0.0), ("i2", "B", 0.0)]
    ) == pytest.approx(1.0)
    assert alpha([("i1", "A", 1.0), ("i2", "B", 0.0)]) is None  # nobody rated the same item
    assert alpha([("i1", "A", 1.0), ("i1", "B", 1.0)]) is None  # no variation at all


def test_unsure_is_missing_and_rules_are_rated_separately() -> None:
    ratings = [
        Rating("i1", "A", "violation", {"r1": "true_positive"}),
        Rating("i1", "B", "violation", {"r1": "true_positive"}),
        Rating("i2", "A", "acceptable", {"r1": "false_positive"}),
        Rating("i2", "B", "unsure", {"r1": "true_positive"}),
        Rating("i3", "A", "acceptable", {"r1": "false_positive"}),
        Rating("i3", "B", "acceptable", {"r1": "false_positive"}),
    ]
    assert verdict_alpha(ratings) == pytest.approx(1.0)  # i2 has only one usable verdict
    # r1: i1 (1,1), i2 (0,1), i3 (0,0): o11=2, o00=2, o01=o10=1; n0=3, n1=3, n=6.
    # D_o = 2/6; D_e = 2*3*3/(6*5) = 18/30; alpha = 1 - (1/3)/(3/5) = 4/9.
    assert rule_alphas(ratings)["r1"] == pytest.approx(4 / 9)
