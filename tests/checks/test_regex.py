"""The ``regex`` detector: a policy author's pattern on the original text."""

# Evasion tests are written with the look-alike characters attackers use.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

from typing import Any

import pytest

from gateway.checks.base import CheckConfigError
from gateway.checks.regex import RegexCheck


def test_a_bare_string_is_the_pattern() -> None:
    check = RegexCheck(r"order #\d+")
    text = "See order #123 and order #45."
    findings = check.find(text)
    assert [text[f.start : f.end] for f in findings] == ["order #123", "order #45"]
    assert {f.label for f in findings} == {"regex"}
    assert check.max_span == 200


def test_mapping_params_set_flags_label_and_max_span() -> None:
    check = RegexCheck({"pattern": "^secret.*$", "flags": "im", "label": "secret", "max_span": 50})
    text = "public line\nSECRET line\nsecret two"
    findings = check.find(text)
    assert [text[f.start : f.end] for f in findings] == ["SECRET line", "secret two"]
    assert {f.label for f in findings} == {"secret"}
    assert check.max_span == 50


def test_matching_is_on_the_text_as_given() -> None:
    # No normalisation: a Cyrillic "а" is not an "a" for a regex rule.
    assert RegexCheck("bank").find("bаnk") == []


def test_empty_matches_are_not_findings() -> None:
    assert RegexCheck("x*").find("abc") == []


def test_no_match_is_an_empty_list() -> None:
    assert RegexCheck("zzz").find("nothing here") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("(unclosed", "invalid pattern '\\(unclosed': missing \\)"),
        ({"pattern": "a", "flags": "q"}, "unknown flag 'q'"),
        ({"pattern": "a", "colour": "red"}, "colour"),
        ({"pattern": ""}, "pattern"),
        ({"pattern": "a", "max_span": 0}, "max_span"),
        ({}, "pattern"),
        (["a"], "must be a mapping"),
        (None, "pattern"),
    ],
)
def test_bad_params_are_config_errors(params: Any, message: str) -> None:
    with pytest.raises(CheckConfigError, match=message):
        RegexCheck(params)
