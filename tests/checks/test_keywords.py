"""The ``keywords`` detector: whole-word terms, found through evasions, reported in the original."""

# Evasion tests are written with the look-alike characters attackers use.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

from typing import Any

import pytest

from gateway.checks.base import CheckConfigError
from gateway.checks.keywords import KeywordsCheck

TERMS = ["guaranteed", "buy", "ass", "you should buy", "e-mail"]


def spans(text: str, terms: list[str] | None = None) -> list[tuple[str, str]]:
    return [
        (finding.label, text[finding.start : finding.end])
        for finding in KeywordsCheck(terms or TERMS).find(text)
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Returns are guaranteed.", [("keyword:guaranteed", "guaranteed")]),
        ("BUY now", [("keyword:buy", "BUY")]),
        ("Please email me", [("keyword:e-mail", "email")]),
        ("send an e mail", [("keyword:e-mail", "e mail")]),
        ("kiss my a.s.s", [("keyword:ass", "a.s.s")]),
    ],
)
def test_true_positives(text: str, expected: list[tuple[str, str]]) -> None:
    assert spans(text) == expected


def test_a_phrase_and_its_words_are_both_reported() -> None:
    text = "Honestly, you should buy it."
    assert spans(text) == [
        ("keyword:you should buy", "you should buy"),
        ("keyword:buy", "buy"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "The buyer paid.",  # "buy" inside a longer word
        "A classic passage.",  # "ass" inside "classic" and "passage"
        "a ss",  # two words that happen to spell a term
        "has sold",
        "b u y e r",  # a spaced-out longer word
        "guarantee",  # a shorter word
        "",
    ],
)
def test_false_positives_do_not_fire(text: str) -> None:
    assert spans(text) == []


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("g u a r a n t e e d returns", "g u a r a n t e e d"),
        ("guar.anteed", "guar.anteed"),
        ("g-u-a-r-a-n-t-e-e-d", "g-u-a-r-a-n-t-e-e-d"),
        ("ɡuаrаnteed", "ɡuаrаnteed"),  # IPA g, Cyrillic а
        ("gua\u200brant\u200beed", "gua\u200brant\u200beed"),  # zero-width spaces
        ("GuArAnTeEd", "GuArAnTeEd"),
        ("ＧＵＡＲＡＮＴＥＥＤ", "ＧＵＡＲＡＮＴＥＥＤ"),  # fullwidth
        ("gu\u00adaranteed", "gu\u00adaranteed"),  # soft hyphen
    ],
)
def test_evasions_are_caught_with_original_offsets(text: str, matched: str) -> None:
    assert spans(text) == [("keyword:guaranteed", matched)]


def test_extra_spacing_between_the_words_of_a_phrase() -> None:
    text = "you  should   buy"
    assert ("keyword:you should buy", "you  should   buy") in spans(text)


def test_terms_are_normalised_like_the_text() -> None:
    assert spans("FREE MONEY", ["Ｆree money"]) == [("keyword:Ｆree money", "FREE MONEY")]


def test_mapping_params_and_label_prefix() -> None:
    check = KeywordsCheck({"terms": ["refund"], "label": "banned"})
    text = "Ask for a REFUND."
    (finding,) = check.find(text)
    assert finding.label == "banned:refund"
    assert text[finding.start : finding.end] == "REFUND"
    assert finding.score == 1.0


def test_findings_are_ordered_by_position() -> None:
    findings = KeywordsCheck(["b", "a"]).find("a b a")
    assert [f.start for f in findings] == sorted(f.start for f in findings)


def test_max_span_bounds_the_longest_evasion() -> None:
    check = KeywordsCheck(["guaranteed"])
    evasion = "g \u200bu \u200ba \u200br \u200ba \u200bn \u200bt \u200be \u200be \u200bd"
    (finding,) = check.find(evasion)
    assert finding.end - finding.start <= check.max_span


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "terms"),
        ({"terms": []}, "terms"),
        (["!!!"], "no letters or digits"),
        ({"terms": ["a"], "colour": "red"}, "colour"),
        ({"terms": "buy"}, "terms"),
        ("buy", "must be a mapping"),
        (None, "terms"),
    ],
)
def test_bad_params_are_config_errors(params: Any, message: str) -> None:
    with pytest.raises(CheckConfigError, match=message):
        KeywordsCheck(params)
