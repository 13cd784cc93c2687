"""The detectors a policy file can name, each under its ``detect`` key."""

from __future__ import annotations

from gateway.checks.anthropomorphism import AnthropomorphismCheck
from gateway.checks.base import Registry
from gateway.checks.classifier import ClassifierCheck, DetectorRuntime, classifier_factory
from gateway.checks.guardrails_bridge import GuardrailsCheck
from gateway.checks.injection import InjectionCheck
from gateway.checks.keywords import KeywordsCheck
from gateway.checks.pii import PiiCheck
from gateway.checks.regex import RegexCheck


def default_registry(runtime: DetectorRuntime | None = None) -> Registry:
    """A fresh registry with every built-in detector (a new one per call: registries mutate).

    ``runtime`` is the detector pool and model catalog the ``classifier`` detector runs with;
    without one, the registry gets a pool of its own that starts no thread until a model runs
    (commands that only read policies, tests). The gateway passes the one its lifespan owns.
    """
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
    registry.register(
        ClassifierCheck.name,
        classifier_factory(runtime or standalone_runtime(), registry.create),
    )
    return registry


def standalone_runtime() -> DetectorRuntime:
    """A runtime for one registry that no lifespan owns: its threads start on first use."""
    from gateway.detectors.catalog import load_model
    from gateway.detectors.pool import DetectorPool, PoolSettings, default_workers

    return DetectorRuntime(DetectorPool(PoolSettings(default_workers())), load_model)
