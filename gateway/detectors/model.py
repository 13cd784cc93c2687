"""The small interface every learned model follows, shipped or the operator's own.

A model is loaded once per process and then scores batches of texts: for each text, the
probability of each of its labels. Its name and revision go into every finding it produces,
so a decision says which model (and which weights) made it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    #: the name policies use (``classifier: {model: injection}``) or the operator's own
    name: str
    #: identifies the weights: a digest of the model file, or the operator's version string
    revision: str
    #: the labels ``score`` returns a probability for
    labels: tuple[str, ...]
    #: the operating threshold per label, chosen when the model was trained (its card says how)
    thresholds: dict[str, float]
    #: the model card, if the model has one (a path or URL an operator can read)
    card: str | None = None


@runtime_checkable
class TextModel(Protocol):
    @property
    def info(self) -> ModelInfo: ...

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, each label's probability in [0, 1]. Thread-safe; may be slow."""
        ...


def bounded(text: str, limit: int) -> str:
    """What a model reads of a text: all of it up to ``limit`` characters, else its head and
    its tail (an instruction hides at either end far more often than in the middle), so one
    long message costs a model no more than ``limit`` characters of work."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n…\n{text[-(limit - half) :]}"


class ModelNeeded(BaseException):
    """Raised where a model would have to run while the caller asked for cached results only
    (``try_cached``): the caller then runs the same work on a worker thread. It derives from
    BaseException so that no check's ``except Exception`` takes it for a failing check."""


_CACHED_ONLY: ContextVar[bool] = ContextVar("situate_cached_only", default=False)


def try_cached(work: Callable[[], T]) -> T:
    """``work()`` with cached results only: a model that would compute raises
    ``ModelNeeded`` instead, so work whose every score is cached can run on the event loop,
    with no thread hop, and nothing is ever computed there."""
    token = _CACHED_ONLY.set(True)
    try:
        return work()
    finally:
        _CACHED_ONLY.reset(token)


def cached_only() -> bool:
    return _CACHED_ONLY.get()


def need_model() -> None:
    """Say a model must compute now: raises ``ModelNeeded`` inside ``try_cached``."""
    if _CACHED_ONLY.get():
        raise ModelNeeded
