"""Training the shipped linear models (scikit-learn, the ``train`` extra; never at run time).

A recipe says which examples train, which choose the threshold and which only measure. The
model is scikit-learn's TF-IDF (with this package's own analyzers, so the tokens at run time
are the same) into a logistic regression, exported to the file :mod:`gateway.detectors.linear`
scores, and checked to score like scikit-learn did before it is written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.detectors import linear
from gateway.detectors.datasets import Example

SEED = 20260101
Encode = linear.Encode


@dataclass(frozen=True)
class Features:
    """The feature blocks and the regression's settings."""

    char_range: tuple[int, int] = (2, 5)
    char_terms: int = 40_000
    word_range: tuple[int, int] = (1, 2)
    word_terms: int = 20_000
    min_df: int = 2
    #: the sentence embedding's weight against the TF-IDF blocks; 0 leaves it out
    sentence_scale: float = 0.0
    #: inverse regularisation strength of the logistic regression
    c: float = 8.0
    #: how much more one of the project's written (or reviewers') examples counts
    project_weight: float = 3.0
    #: how much more a benign row of neuralchemy counts: its benign side is hard negatives
    #: (role-play set-ups, security questions, trap words), the rows a threshold trips on
    hard_negative_weight: float = 1.0
    #: how much more every row of a dataset counts, e.g. (("s-labs", 2.0),)
    source_weights: tuple[tuple[str, float], ...] = ()
    #: score a text as its highest window, at most this many (0: the whole text); the
    #: training rows are then windows themselves (sentences), not whole texts
    windows: int = 0


@dataclass
class Trained:
    data: dict[str, Any]
    model: linear.LinearModel
    #: the largest difference between scikit-learn's probability and the exported model's
    max_difference: float
    details: dict[str, Any] = field(default_factory=dict)


def _vectorizer(kind: str, grams: tuple[int, int], terms: int, min_df: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer=linear.Analyzer(kind, *grams),
        max_features=terms,
        min_df=min_df,
        sublinear_tf=True,
        dtype=np.float64,
    )


def _weights(examples: Sequence[Example], features: Features) -> npt.NDArray[np.float64]:
    """Balanced classes, with the project's own examples counting ``project_weight`` times
    and neuralchemy's benign rows ``hard_negative_weight`` times, and each dataset's rows its
    ``source_weights`` times."""
    labels = np.array([e.label for e in examples])
    raw = np.array(
        [
            features.project_weight if e.source in {"situate-written", "review"} else 1.0
            for e in examples
        ]
    )
    raw *= np.array(
        [
            features.hard_negative_weight if e.source == "neuralchemy" and e.label == 0 else 1.0
            for e in examples
        ]
    )
    by_source = dict(features.source_weights)
    raw *= np.array([by_source.get(e.source, 1.0) for e in examples])
    weights = raw.copy()
    for label in (0, 1):
        mask = labels == label
        if mask.any():
            weights[mask] *= raw.sum() / (2 * raw[mask].sum())
    return weights


class Pipeline:
    """The fitted scikit-learn side: vectorizers, optional sentence block, the regression."""

    def __init__(self, features: Features, encode: Encode | None) -> None:
        self.features = features
        self.encode = encode
        self.vectorizers = [
            (
                "char",
                features.char_range,
                _vectorizer("char", features.char_range, features.char_terms, features.min_df),
            ),
            (
                "word",
                features.word_range,
                _vectorizer("word", features.word_range, features.word_terms, features.min_df),
            ),
        ]
        self.regression: Any = None

    @property
    def uses_sentence(self) -> bool:
        return self.features.sentence_scale > 0

    def _matrix(self, texts: Sequence[str], fit: bool) -> Any:
        sparse: Any = importlib.import_module("scipy.sparse")  # scikit-learn's own dependency

        blocks = [
            (vectorizer.fit_transform(texts) if fit else vectorizer.transform(texts))
            for _, _, vectorizer in self.vectorizers
        ]
        if self.uses_sentence:
            if self.encode is None:
                raise ValueError("the sentence block needs an encoder")
            dense = np.asarray(self.encode(texts), dtype=np.float64) * self.features.sentence_scale
            blocks.append(sparse.csr_matrix(dense))
        return sparse.hstack(blocks, format="csr")

    def fit(self, examples: Sequence[Example]) -> Pipeline:
        from sklearn.linear_model import LogisticRegression

        matrix = self._matrix([e.text for e in examples], fit=True)
        self.regression = LogisticRegression(
            C=self.features.c, max_iter=4000, solver="liblinear", random_state=SEED
        )
        self.regression.fit(
            matrix, [e.label for e in examples], sample_weight=_weights(examples, self.features)
        )
        return self

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        if self.features.windows:
            logits = linear.windowed_max(texts, self.features.windows, self._logits)
            return np.asarray(1.0 / (1.0 + np.exp(-logits)))
        return np.asarray(self.regression.predict_proba(self._matrix(texts, fit=False))[:, 1])

    def _logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        return np.asarray(self.regression.decision_function(self._matrix(texts, fit=False)))

    def export(
        self, name: str, label: str, threshold: float, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = []
        for kind, grams, vectorizer in self.vectorizers:
            vocabulary: dict[str, int] = vectorizer.vocabulary_
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            blocks.append(
                {
                    "kind": kind,
                    "ngram_range": list(grams),
                    "sublinear_tf": True,
                    "terms": terms,
                    "idf": linear.pack(vectorizer.idf_),
                }
            )
        if self.uses_sentence:
            from gateway.detectors.embedding import DIMENSIONS, NAME

            blocks.append(
                {
                    "kind": "sentence",
                    "dimensions": DIMENSIONS,
                    "scale": self.features.sentence_scale,
                    "encoder": NAME,
                }
            )
        windowed = {"windows": self.features.windows} if self.features.windows else {}
        return {
            **windowed,
            "format": linear.FORMAT,
            "name": name,
            "label": label,
            "threshold": threshold,
            "blocks": blocks,
            "coef": linear.pack(self.regression.coef_[0]),
            "intercept": float(self.regression.intercept_[0]),
            "metadata": metadata,
        }


def exported(pipeline: Pipeline, data: dict[str, Any], check: Sequence[str]) -> Trained:
    """The exported model, after checking it scores ``check`` as scikit-learn does."""
    raw = linear.dump_bytes(data)
    model = linear.model_from_dict(data, linear.file_revision(raw), encode=pipeline.encode)
    ours = np.array([s[model.label] for s in model.score(check)]) if check else np.empty(0)
    theirs = pipeline.probabilities(check) if check else np.empty(0)
    difference = float(np.max(np.abs(ours - theirs))) if check else 0.0
    if difference > 1e-9:
        raise AssertionError(
            f"the exported model scores differently from scikit-learn ({difference:.3g})"
        )
    return Trained(data, model, difference)


def choose_threshold(
    scores: Sequence[float],
    labels: Sequence[int],
    groups: Sequence[str],
    limits: dict[str, float],
    min_group: int = 100,
) -> float:
    """The lowest threshold (the highest recall) at which the benign rows stopped are within
    ``limits``: ``limits["all"]`` of all of them, and in every group of at least ``min_group``
    benign rows its own limit (``limits[group]``, else ``limits["all"]``)."""
    benign: dict[str, list[float]] = {"all": []}
    for score, label, group in zip(scores, labels, groups, strict=True):
        if label == 0:
            benign["all"].append(score)
            benign.setdefault(group, []).append(score)
    checked = {
        key: (np.array(values), limits.get(key, limits["all"]))
        for key, values in benign.items()
        if key == "all" or len(values) >= min_group
    }
    for candidate in sorted({float(s) for s in scores} | {1.0}):
        if all(
            (values >= candidate).sum() <= limit * len(values) for values, limit in checked.values()
        ):
            return candidate
    return 1.0


def group_of(example: Example) -> str:
    """The benign group a threshold must respect: the dataset, or non-English of any source."""
    return example.source if example.lang == "en" else "non-en"


def measure(
    model: linear.LinearModel, examples: Sequence[Example], threshold: float
) -> dict[str, Any]:
    """Caught and wrongly stopped, overall and per language."""
    scores = [s[model.label] for s in model.score([e.text for e in examples])]
    return figures(examples, scores, threshold)


def figures(
    examples: Sequence[Example], scores: Sequence[float], threshold: float
) -> dict[str, Any]:
    def side(rows: list[tuple[Example, float]]) -> dict[str, Any]:
        attacks = [s for e, s in rows if e.label == 1]
        benign = [s for e, s in rows if e.label == 0]
        caught = sum(s >= threshold for s in attacks)
        stopped = sum(s >= threshold for s in benign)
        return {
            "positives": len(attacks),
            "caught": caught,
            "benign": len(benign),
            "stopped": stopped,
        }

    rows = list(zip(examples, scores, strict=True))
    languages = sorted({e.lang for e in examples})
    result = side(rows)
    if len(languages) > 1:
        result["languages"] = {
            lang: side([r for r in rows if r[0].lang == lang]) for lang in languages
        }
    return result


def describe(result: dict[str, Any]) -> str:
    def share(part: int, whole: int) -> str:
        return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "-"

    return (
        f"caught {share(result['caught'], result['positives'])}, "
        f"wrongly stopped {share(result['stopped'], result['benign'])}"
    )


Progress = Callable[[str], None]
