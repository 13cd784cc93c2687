"""Linear text models from a small JSON file: TF-IDF n-grams (and optionally a sentence
embedding) into a logistic regression, scored in numpy with no scikit-learn at run time.

The file (``<name>.json.gz``, written by ``gateway detectors train``) holds blocks of features
and one weight vector over all of them:

- ``char``: character n-grams inside word boundaries (each word padded with a space, as
  scikit-learn's ``char_wb``), ``word``: word n-grams; both over the NFKC-normalised, casefolded
  text, counted, ``1 + log`` damped when ``sublinear_tf``, times the block's idf, L2-normalised
  per block (scikit-learn's ``TfidfVectorizer``; training uses the analyzers below, so the
  tokens are the same by construction and a test checks the scores agree);
- ``sentence``: the shared multilingual sentence encoder's unit vector, times ``scale``.

``p = sigmoid(intercept + coef · features)``. The revision is a digest of the file's bytes.

A file with ``windows: N`` (N > 0) is a windowed model: a text is scored as the highest of its
windows' scores (:mod:`gateway.detectors.windows`: its sentences, at most N of them).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.detectors.model import ModelInfo
from gateway.detectors.windows import windows as windows_of

FORMAT = "situate-linear/1"
_WORD = re.compile(r"(?u)\b\w\w+\b")

Floats = npt.NDArray[np.float64]
Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class ModelFileError(ValueError):
    """A model file that is not a linear model this version can read."""


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def char_ngrams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams of each space-padded word (scikit-learn's ``char_wb``)."""
    grams: list[str] = []
    for word in normalise(text).split():
        padded = f" {word} "
        size = len(padded)
        if size <= low:
            grams.append(padded)  # a word no longer than the shortest n counts once, whole
            continue
        for n in range(low, min(high, size) + 1):
            grams += [padded[i : i + n] for i in range(size - n + 1)]
    return grams


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """Word n-grams (words of two or more word characters), joined by a space."""
    words = _WORD.findall(normalise(text))
    grams: list[str] = []
    for n in range(low, high + 1):
        grams.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return grams


ANALYZERS: dict[str, Callable[[str, int, int], list[str]]] = {
    "char": char_ngrams,
    "word": word_ngrams,
}


@dataclass(frozen=True, slots=True)
class Analyzer:
    """One block's tokens: the same callable at training (scikit-learn's ``analyzer``) and here."""

    kind: str
    low: int
    high: int

    def __call__(self, text: str) -> list[str]:
        return ANALYZERS[self.kind](text, self.low, self.high)


def pack(values: npt.ArrayLike) -> str:
    """Little-endian float64, base64: exact, and smaller than decimal text."""
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode("ascii")


def unpack(text: str) -> Floats:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)


@dataclass(frozen=True, slots=True)
class TermBlock:
    analyzer: Analyzer
    index: dict[str, int]
    idf: Floats
    sublinear_tf: bool
    offset: int

    @property
    def width(self) -> int:
        return len(self.index)

    def features(self, text: str) -> tuple[npt.NDArray[np.intp], Floats]:
        """The non-zero features' positions (in the whole vector) and values."""
        found = [p for p in map(self.index.get, self.analyzer(text)) if p is not None]
        if not found:
            return np.empty(0, dtype=np.intp), np.empty(0)
        positions, counts = np.unique(np.array(found, dtype=np.intp), return_counts=True)
        tf = counts.astype(np.float64)
        if self.sublinear_tf:
            tf = np.log(tf) + 1.0
        values = tf * self.idf[positions]
        return positions + self.offset, values / np.sqrt(values @ values)


@dataclass(frozen=True, slots=True)
class SentenceBlock:
    dimensions: int
    scale: float
    offset: int
    encoder: str

    @property
    def width(self) -> int:
        return self.dimensions


class LinearModel:
    """A :class:`~gateway.detectors.model.TextModel` over one label. Immutable, thread-safe."""

    def __init__(
        self,
        info: ModelInfo,
        terms: Sequence[TermBlock],
        sentence: SentenceBlock | None,
        coef: Floats,
        intercept: float,
        *,
        encode: Encode | None = None,
        metadata: dict[str, Any] | None = None,
        windows: int = 0,
    ) -> None:
        self._info = info
        #: score a text as its highest window (at most this many), or whole when 0
        self.windows = windows
        self._terms = tuple(terms)
        self._sentence = sentence
        self._coef = coef
        self._intercept = intercept
        self._encode = encode
        self.metadata = metadata or {}

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def label(self) -> str:
        return self._info.labels[0]

    @property
    def needs_encoder(self) -> bool:
        return self._sentence is not None

    def decision(self, texts: Sequence[str]) -> Floats:
        """The logits, one per text (a windowed model's: its highest window's)."""
        if not self.windows:
            return self._logits(texts)
        return windowed_max(texts, self.windows, self._logits)

    def _logits(self, texts: Sequence[str]) -> Floats:
        out = np.full(len(texts), self._intercept, dtype=np.float64)
        for row, text in enumerate(texts):
            for block in self._terms:
                positions, values = block.features(text)
                out[row] += self._coef[positions] @ values
        if self._sentence is not None and texts:
            sentence = self._sentence
            vectors = self._encoder()(texts).astype(np.float64) * sentence.scale
            out += vectors @ self._coef[sentence.offset : sentence.offset + sentence.dimensions]
        return out

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{self.label: _sigmoid(z)} for z in self.decision(texts)]

    def _encoder(self) -> Encode:
        if self._encode is None:
            from gateway.detectors.embedding import shared_encoder

            return shared_encoder().encode
        return self._encode


def windowed_max(
    texts: Sequence[str], cap: int, logits: Callable[[Sequence[str]], Floats]
) -> Floats:
    """Per text, the highest of ``logits`` over its windows (all windows scored in one batch)."""
    pieces = [windows_of(text, cap) for text in texts]
    flat = [w for piece in pieces for w in piece]
    scores = logits(flat) if flat else np.empty(0)
    out = np.empty(len(texts), dtype=np.float64)
    start = 0
    for row, piece in enumerate(pieces):
        out[row] = scores[start : start + len(piece)].max()
        start += len(piece)
    return out


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _blocks(raw: list[dict[str, Any]]) -> tuple[list[TermBlock], SentenceBlock | None, int]:
    terms: list[TermBlock] = []
    sentence: SentenceBlock | None = None
    offset = 0
    for spec in raw:
        if spec["kind"] == "sentence":
            sentence = SentenceBlock(
                int(spec["dimensions"]), float(spec["scale"]), offset, str(spec["encoder"])
            )
            offset += sentence.width
            continue
        if spec["kind"] not in ANALYZERS:
            raise ModelFileError(f"unknown feature block {spec['kind']!r}")
        vocabulary = [str(term) for term in spec["terms"]]
        idf = unpack(spec["idf"])
        if len(idf) != len(vocabulary):
            raise ModelFileError(f"{spec['kind']} block: {len(vocabulary)} terms, {len(idf)} idf")
        low, high = (int(n) for n in spec["ngram_range"])
        index = {term: position for position, term in enumerate(vocabulary)}
        terms.append(
            TermBlock(
                Analyzer(spec["kind"], low, high), index, idf, bool(spec["sublinear_tf"]), offset
            )
        )
        offset += len(vocabulary)
    return terms, sentence, offset


def model_from_dict(
    data: dict[str, Any], revision: str, *, card: str | None = None, encode: Encode | None = None
) -> LinearModel:
    if data.get("format") != FORMAT:
        raise ModelFileError(f"format {data.get('format')!r} is not {FORMAT}")
    terms, sentence, width = _blocks(data["blocks"])
    coef = unpack(data["coef"])
    if len(coef) != width:
        raise ModelFileError(f"{len(coef)} weights for {width} features")
    label = str(data["label"])
    info = ModelInfo(
        name=str(data["name"]),
        revision=revision,
        labels=(label,),
        thresholds={label: float(data["threshold"])},
        card=card,
    )
    return LinearModel(
        info,
        terms,
        sentence,
        coef,
        float(data["intercept"]),
        encode=encode,
        metadata=dict(data.get("metadata") or {}),
        windows=int(data.get("windows") or 0),
    )


def dump_bytes(data: dict[str, Any]) -> bytes:
    """The file's bytes: canonical JSON, gzip with no timestamp (same model, same digest)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def file_revision(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def load_linear(path: Path, *, encode: Encode | None = None) -> LinearModel:
    """The model in ``path`` (gzip or plain JSON); its card is ``<name>.md`` beside it."""
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: not a model file")
    stem = path.name.split(".", 1)[0]
    card = path.with_name(f"{stem}.md")
    try:
        return model_from_dict(
            data, file_revision(raw), card=str(card) if card.is_file() else None, encode=encode
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
