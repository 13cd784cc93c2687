"""The protocol every detector follows, and the registry that names them in policy files.

A detector is built once per policy revision from the parameters a rule gives it
(``detect: {<name>: <params>}``) and then called per text. It returns findings whose offsets
are in the text it was given (never in a normalised copy), so the gateway can redact the exact
spans and record them as evidence. Timing, tracing and failure handling wrap detectors; they
do not live inside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    """One match: ``text[start:end]`` in the original text, what it is, and how sure."""

    start: int
    end: int
    label: str
    score: float = 1.0
    #: what produced the finding when it is not the rule's detector alone: a learned model's
    #: ``name@revision``, or the stage of a cascade that decided (``heuristic:injection``)
    source: str | None = None


class Check(Protocol):
    #: the key that names this detector in a policy file's ``detect`` mapping
    name: ClassVar[str]

    @property
    def max_span(self) -> int:
        """The longest text (in characters) one finding can cover; streams hold this much back."""
        ...

    def find(self, text: str) -> list[Finding]:
        """Every finding in ``text``; an empty list when nothing matches."""
        ...


class CheckConfigError(ValueError):
    """A detector's parameters are invalid; the message says which and why."""


CheckFactory = Callable[[Any], Check]


class Registry:
    """Detector names → factories taking the rule's parameters (already parsed YAML)."""

    def __init__(self) -> None:
        self._factories: dict[str, CheckFactory] = {}

    def register(self, name: str, factory: CheckFactory) -> None:
        if name in self._factories:
            raise ValueError(f"detector {name!r} is registered twice")
        self._factories[name] = factory

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(self, name: str, params: Any) -> Check:
        factory = self._factories.get(name)
        if factory is None:
            raise CheckConfigError(f"unknown detector {name!r}; known: {', '.join(self.names)}")
        return factory(params)
