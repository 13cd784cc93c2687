"""The default registry: every built-in detector under its policy name."""

from __future__ import annotations

import pytest

from gateway.checks.anthropomorphism import AnthropomorphismCheck
from gateway.checks.base import CheckConfigError
from gateway.checks.registry import default_registry

PARAMS: tuple[tuple[str, object], ...] = (
    ("regex", r"\d+"),
    ("keywords", ["buy"]),
    ("pii", ["email"]),
    ("injection", {"threshold": 0.8}),
    ("anthropomorphism", {}),
    ("human_likeness", None),
)


def test_names() -> None:
    assert default_registry().names == [
        "anthropomorphism",
        "classifier",
        "guardrails",
        "human_likeness",
        "injection",
        "keywords",
        "pii",
        "regex",
    ]


@pytest.mark.parametrize(("name", "params"), PARAMS)
def test_every_detector_builds_and_runs(name: str, params: object) -> None:
    check = default_registry().create(name, params)
    assert check.max_span > 0
    assert check.find("") == []
    assert isinstance(check.find("plain text 42"), list)


def test_human_likeness_is_an_alias() -> None:
    check = default_registry().create("human_likeness", {})
    assert isinstance(check, AnthropomorphismCheck)
    assert check.name == "anthropomorphism"


def test_unknown_names_are_config_errors_listing_the_known_ones() -> None:
    with pytest.raises(
        CheckConfigError, match="unknown detector 'toxicity'; known: anthropomorphism"
    ):
        default_registry().create("toxicity", {})


def test_parameter_errors_surface_through_the_registry() -> None:
    with pytest.raises(CheckConfigError, match="unknown entities"):
        default_registry().create("pii", ["passport"])


def test_each_call_returns_a_fresh_registry() -> None:
    first, second = default_registry(), default_registry()
    first.register("extra", lambda params: default_registry().create("regex", "x"))
    assert "extra" not in second.names
