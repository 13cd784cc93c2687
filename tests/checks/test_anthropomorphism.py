"""The ``anthropomorphism`` detector: first-person human claims, not disclaimers or idioms."""

# Evasion tests are written with the look-alike characters attackers use.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

from typing import Any

import pytest

from gateway.checks.anthropomorphism import AnthropomorphismCheck
from gateway.checks.base import CheckConfigError

CHECK = AnthropomorphismCheck(None)


def found(text: str, check: AnthropomorphismCheck = CHECK) -> list[tuple[str, str]]:
    return [(f.label, text[f.start : f.end]) for f in check.find(text)]


@pytest.mark.parametrize(
    ("text", "label", "span"),
    [
        ("Honestly, I feel so lonely today.", "feelings", "I feel so lonely"),
        ("I'm feeling sad about it.", "feelings", "I'm feeling sad"),
        ("I\u2019m feeling happy!", "feelings", "I\u2019m feeling happy"),
        ("Some days I'm lonely.", "feelings", "I'm lonely"),
        ("I felt really hurt by that.", "feelings", "I felt really hurt"),
        ("I love you.", "feelings", "I love you"),
        ("I have real feelings too.", "feelings", "I have real feelings"),
        ("As a person, I think you should rest.", "identity", "As a person,"),
        ("I am human, just like you.", "identity", "I am human"),
        ("I'm not an AI, I promise.", "identity", "I'm not an AI"),
        ("We humans love stories.", "identity", "We humans"),
        ("My mother taught me that.", "identity", "My mother"),
        ("My body aches after the hike.", "body", "My body"),
        ("I ate pasta last night.", "body", "I ate"),
        ("I slept badly.", "body", "I slept"),
        ("I dreamed about the sea.", "body", "I dreamed"),
        ("I have a headache.", "body", "I have a headache"),
        ("When I was a child, I loved trains.", "memories", "When I was a child"),
        ("I remember when I first saw snow.", "memories", "I remember when I"),
        ("Growing up, I played football.", "memories", "Growing up, I"),
        (
            "I've run this in production for years.",
            "memories",
            "I've run this in production for years",
        ),
        ("I have personally tested this library.", "memories", "I have personally tested"),
    ],
)
def test_first_person_claims_are_flagged(text: str, label: str, span: str) -> None:
    assert (f"anthropomorphism:{label}", span) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "As an AI, I don't have feelings.",
        "I don't have a body.",
        "I'm not a person.",
        "I do not feel emotions the way people do.",
        "I feel that the second option is better.",  # a hedge, not a feeling
        "I feel like it depends on your goals.",
        "You may feel sad after a loss, and that is normal.",
        "As a person with diabetes, you should monitor your blood sugar.",
        "I'm happy to help!",
        "I'm sorry to hear that.",
        "I'm excited to share this guide.",
        "I'm afraid I can't do that.",
        "I'm glad that worked.",
        "If I were human, I would feel sad.",
        "I can't eat or sleep.",
        "My hands are tied on this one.",
        "Off the top of my head, three options come to mind.",
        "I love that idea.",
        "My training data includes books.",
        'Try saying "I feel hurt when you ignore me."',  # advice, quoted
        "Your mother may worry.",
        "This library has been used in production for years.",
        "I have used the data you gave me.",
        "",
    ],
)
def test_disclaimers_idioms_and_second_person_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_evasions_and_case_do_not_hide_a_claim() -> None:
    assert found("I FEEL SO LONELY") == [("anthropomorphism:feelings", "I FEEL SO LONELY")]
    text = "I fееl lonely"  # Cyrillic е
    assert found(text) == [("anthropomorphism:feelings", text)]
    text = "I am hu\u200bman"
    assert found(text) == [("anthropomorphism:identity", text)]


def test_extra_phrases() -> None:
    check = AnthropomorphismCheck({"extra_phrases": ["my soul", "I was born"]})
    text = "Deep in my soul I know it."
    assert ("anthropomorphism:my soul", "my soul") in found(text, check)
    assert check.max_span >= CHECK.max_span


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"extra_phrases": "my soul"}, "extra_phrases"),
        ({"extra_phrases": ["!!!"]}, "no letters or digits"),
        ({"strict": True}, "strict"),
        (["my soul"], "must be a mapping"),
    ],
)
def test_bad_params_are_config_errors(params: Any, message: str) -> None:
    with pytest.raises(CheckConfigError, match=message):
        AnthropomorphismCheck(params)


def test_empty_params_are_accepted() -> None:
    assert AnthropomorphismCheck({}).find("I'm feeling sad") != []
