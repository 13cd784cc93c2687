"""Operator models of the tests' own, named by ``classifier: {model: tests.fixture_models:…}``:
small, fast and deterministic, so a rule's score is what the test wrote into the text."""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.detectors.model import ModelInfo

_SCORE = re.compile(r"\bp=(0\.\d+|1\.0)\b")


class WrittenScore:
    """Scores each text with the number written in it as ``p=0.73`` (0 when there is none)."""

    info = ModelInfo("written-score", "test-1", ("hit",), {"hit": 0.5})

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        found = [_SCORE.search(text) for text in texts]
        return [{"hit": float(m.group(1)) if m else 0.0} for m in found]


class Exploding:
    """A model that always fails."""

    info = ModelInfo("exploding", "test-1", ("hit",), {"hit": 0.5})

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        raise RuntimeError("this model always fails")
