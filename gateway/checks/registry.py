"""The detectors a policy file can name, each under its ``detect`` key."""

from __future__ import annotations

from gateway.checks.anthropomorphism import AnthropomorphismCheck
from gateway.checks.base import Registry
from gateway.checks.guardrails_bridge import GuardrailsCheck
from gateway.checks.injection import InjectionCheck
from gateway.checks.keywords import KeywordsCheck
from gateway.checks.pii import PiiCheck
from gateway.checks.regex import RegexCheck


def default_registry() -> Registry:
    """A fresh registry with every built-in detector (a new one per call: registries mutate)."""
    registry = Registry()
    registry.register(RegexCheck.name, RegexCheck)
    registry.register(KeywordsCheck.name, KeywordsCheck)
    registry.register(PiiCheck.name, PiiCheck)
    registry.register(InjectionCheck.name, InjectionCheck)
    registry.register(AnthropomorphismCheck.name, AnthropomorphismCheck)
    # The shipped policies name this rule "human-likeness"; the detector answers to that too.
    registry.register("human_likeness", AnthropomorphismCheck)
    # guardrails itself is imported only when a rule names this detector.
    registry.register(GuardrailsCheck.name, GuardrailsCheck.from_params)
    return registry
