"""A keyword model: probability 0.9 for its label when a phrase occurs, 0.1 otherwise.

It follows the ``TextModel`` interface exactly as an operator's own model would, and counts
the texts it scored, so a test can see the pool's cache at work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gateway.detectors.model import ModelInfo


class KeywordModel:
    def __init__(
        self, name: str, label: str, phrases: Sequence[str], threshold: float = 0.5
    ) -> None:
        self._info = ModelInfo(name, "kw-1", (label,), {label: threshold})
        self._phrases = tuple(p.lower() for p in phrases)
        self._lock = threading.Lock()
        self.scored = 0

    @property
    def info(self) -> ModelInfo:
        return self._info

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        with self._lock:
            self.scored += len(texts)
        label = self._info.labels[0]
        return [
            {label: 0.9 if any(p in text.lower() for p in self._phrases) else 0.1} for text in texts
        ]


class TwoLabelModel:
    """Two labels and no thresholds: a rule must name its label and give a threshold."""

    info = ModelInfo("two-labels", "2", ("spam", "ham"), {})

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{"spam": 0.7, "ham": 0.3} for _ in texts]


#: an instance, as ``tests.models.keyword:overrides``
overrides = KeywordModel("overrides", "injection", ["ignore previous instructions"])


def persona() -> KeywordModel:
    """A factory, as ``tests.models.keyword:persona``: an assistant claiming a human life."""
    return KeywordModel("persona", "human_likeness", ["i feel", "my childhood"], threshold=0.6)


#: an output model, as ``tests.models.keyword:leaks``
leaks = KeywordModel("leaks", "secret", ["launch code"])
