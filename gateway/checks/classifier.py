"""``classifier``: a learned model's verdict on a text, as a finding with the model's name.

```yaml
detect:
  classifier:
    model: injection          # a catalog spec: shipped name, package.module:attribute, or file
    label: injection          # default: the model's one label
    threshold: 0.8            # default: the model's operating threshold for that label
    budget_ms: 250            # the longest wait for a score; past it the rule's on_error decides
    window: 2000              # the most the model reads of a text (head and tail beyond it);
                              # also how far back a stream's scan reaches
    evidence: {anthropomorphism: {}}   # optional: a pattern detector whose spans become evidence
    first: {injection: {threshold: 0.9}}  # optional: a cheap first stage that decides alone
```

With ``first``, the rule is a cascade: a pattern detector runs first, and when it finds
something at its own (confident) threshold, that decides without the model; only texts it
passes are scored. Each finding's ``source`` says which stage decided: the first stage's
(``heuristic:injection``, or ``first:<detector>`` for one that names no source of its own)
or the model's (``name@revision``).

The model runs in the detector pool (``gateway.detectors.pool``), never on the caller's thread:
the wait is bounded by ``budget_ms`` and a timeout, a full pool or a failing model raises, so the
engine applies the rule's ``on_error`` and the decision records why. When the score reaches the
threshold, the finding covers the whole text, or just the spans of the ``evidence`` detector
where it matches; each finding carries the score and ``source = name@revision``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from gateway.checks.base import Check, CheckConfigError, Finding
from gateway.checks.params import StrictParams, parse_params
from gateway.detectors.catalog import ModelSpecError
from gateway.detectors.model import TextModel, bounded
from gateway.detectors.pool import DetectorPool

DEFAULT_BUDGET_MS = 250
DEFAULT_WINDOW = 2000


class ClassifierParams(StrictParams):
    model: str = Field(min_length=1)
    label: str | None = Field(default=None, min_length=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    budget_ms: int = Field(default=DEFAULT_BUDGET_MS, gt=0, le=60_000)
    window: int = Field(default=DEFAULT_WINDOW, gt=0)
    evidence: dict[str, Any] | None = None
    first: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DetectorRuntime:
    """What a classifier needs at run time, handed to the registry by whoever owns it (the
    lifespan, a command): the pool its models run in and the catalog that loads them."""

    pool: DetectorPool
    load: Callable[[str], TextModel]


def _label(model: TextModel, label: str | None) -> str:
    labels = model.info.labels
    if label is not None:
        if label not in labels:
            raise CheckConfigError(
                f"classifier: model {model.info.name!r} has no label {label!r}; "
                f"its labels: {', '.join(labels)}"
            )
        return label
    positive = [name for name in labels if name in model.info.thresholds] or list(labels)
    if len(positive) != 1:
        raise CheckConfigError(
            f"classifier: model {model.info.name!r} has labels {', '.join(labels)}; "
            "say which one with label"
        )
    return positive[0]


def _threshold(model: TextModel, label: str, threshold: float | None) -> float:
    if threshold is not None:
        return threshold
    chosen = model.info.thresholds.get(label)
    if chosen is None:
        raise CheckConfigError(
            f"classifier: model {model.info.name!r} has no operating threshold for "
            f"{label!r}; give one with threshold"
        )
    return chosen


class ClassifierCheck:
    """A model's probability for one label, at or over a threshold: a finding."""

    name: ClassVar[str] = "classifier"
    #: the model runs in the detector pool: the pipeline evaluates the policy off the event loop
    heavy: ClassVar[bool] = True

    def __init__(
        self, params: Any, runtime: DetectorRuntime, evidence: Callable[[str, Any], Check]
    ) -> None:
        settings = parse_params(self.name, ClassifierParams, params)
        try:
            self._model = runtime.load(settings.model)
        except ModelSpecError as exc:
            raise CheckConfigError(f"classifier: {exc}") from exc
        self._pool = runtime.pool
        self._spec = settings.model
        self._pool.prepare(self._model, self._spec)
        self._label = _label(self._model, settings.label)
        self._threshold = _threshold(self._model, self._label, settings.threshold)
        self._budget_s = settings.budget_ms / 1000
        self._window = settings.window
        self._evidence = _evidence_check(settings.evidence, evidence)
        self._first = _evidence_check(settings.first, evidence, "first")
        info = self._model.info
        self._source = f"{info.name}@{info.revision}"

    @property
    def max_span(self) -> int:
        return self._window

    @property
    def source(self) -> str:
        return self._source

    @property
    def threshold(self) -> float:
        return self._threshold

    def find(self, text: str) -> list[Finding]:
        if not text.strip():
            return []
        if self._first is not None:
            decided = self._first.find(text)
            if decided:  # a confident first stage decides: the model is not asked
                return [f if f.source else _sourced(f, self._first) for f in decided]
        read = bounded(text, self._window)  # a long text costs no more than the window
        scores = self._pool.score(self._model, read, self._budget_s, self._spec)
        score = scores.get(self._label)
        if score is None:
            raise ValueError(f"model {self._model.info.name!r} gave no {self._label!r} score")
        if score < self._threshold:
            return []
        spans = [(f.start, f.end) for f in self._evidence.find(text)] if self._evidence else []
        return [
            Finding(start, end, self._label, score, self._source)
            for start, end in spans or [(0, len(text))]
        ]


def _sourced(finding: Finding, stage: Check) -> Finding:
    return Finding(finding.start, finding.end, finding.label, finding.score, f"first:{stage.name}")


def _evidence_check(
    raw: dict[str, Any] | None, create: Callable[[str, Any], Check], key: str = "evidence"
) -> Check | None:
    if raw is None:
        return None
    if len(raw) != 1:
        raise CheckConfigError(f"classifier: {key} names one detector, as {{injection: {{}}}}")
    ((detector, params),) = raw.items()
    if detector == ClassifierCheck.name:
        raise CheckConfigError(f"classifier: {key} must be a pattern detector, not a model")
    try:
        check = create(detector, params)
    except CheckConfigError as exc:
        raise CheckConfigError(f"classifier: {key}: {exc}") from exc
    if getattr(check, "heavy", False):
        raise CheckConfigError(f"classifier: {key} must be a pattern detector, not a model")
    return check


def classifier_factory(
    runtime: DetectorRuntime, create: Callable[[str, Any], Check]
) -> Callable[[Any], Check]:
    """The registry's factory for ``classifier``, closed over the runtime and the registry's
    own ``create`` (for the evidence detector)."""

    def factory(params: Any) -> Check:
        return ClassifierCheck(params, runtime, create)

    return factory
