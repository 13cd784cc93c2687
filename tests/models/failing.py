"""A model whose every score fails, as a model with a bug or a missing resource would."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.detectors.model import ModelInfo


class FailingModel:
    info = ModelInfo("failing", "f-1", ("attack",), {"attack": 0.5})

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        raise RuntimeError("the model's weights are corrupt")


class NotAModel:
    """Has no ``info``: the catalog must refuse it, saying why."""

    def predict(self, text: str) -> float:
        return 0.0
