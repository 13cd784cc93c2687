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
    BaseException so that no check's ``except Exception`` takes it for a failing check.

    Also raised where a light check would read more new text than the event loop may spend
    on one evaluation (``charge_scan``): ``scan`` is then True, and the work goes to a thread
    as for a model, where long scans take turns (``DetectorPool.run``)."""

    def __init__(self, *, scan: bool = False) -> None:
        super().__init__()
        self.scan = scan


_CACHED_ONLY: ContextVar[bool] = ContextVar("situate_cached_only", default=False)
#: characters of new text the current cached-only try may still have its light checks read
_SCAN_LEFT: ContextVar[list[int] | None] = ContextVar("situate_scan_left", default=None)

#: how much new text (characters, summed over the checks that read it) one evaluation may
#: scan on the event loop: the regular-expression detectors cost some microseconds a
#: character, so this keeps a try on the loop to a few milliseconds; a chat's history is
#: cached and costs nothing, so only a long new message goes to a thread
LOOP_SCAN_CHARS = 6000


def try_cached(work: Callable[[], T], *, scan_chars: int = LOOP_SCAN_CHARS) -> T:
    """``work()`` with cached results only: a model that would compute raises
    ``ModelNeeded`` instead, so work whose every score is cached can run on the event loop,
    with no thread hop, and nothing is ever computed there. Light checks may read up to
    ``scan_chars`` characters they have not read before; past that, ``ModelNeeded`` too."""
    token = _CACHED_ONLY.set(True)
    left = _SCAN_LEFT.set([scan_chars])
    try:
        return work()
    finally:
        _SCAN_LEFT.reset(left)
        _CACHED_ONLY.reset(token)


def cached_only() -> bool:
    return _CACHED_ONLY.get()


def need_model() -> None:
    """Say a model must compute now: raises ``ModelNeeded`` inside ``try_cached``."""
    if _CACHED_ONLY.get():
        raise ModelNeeded


def charge_scan(chars: int) -> None:
    """A light check is about to read ``chars`` characters it has no cached answer for: inside
    ``try_cached``, past the try's budget, raises ``ModelNeeded(scan=True)``."""
    left = _SCAN_LEFT.get()
    if left is None or not _CACHED_ONLY.get():
        return
    left[0] -= chars
    if left[0] < 0:
        raise ModelNeeded(scan=True)
