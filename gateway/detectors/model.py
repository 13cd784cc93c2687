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


class _ScanBudget:
    """What the current cached-only try may still read: characters of new text, each text
    counted once however many checks read it (the rules a policy has are its author's choice;
    the text a client sends is not)."""

    __slots__ = ("left", "seen")

    def __init__(self, chars: int) -> None:
        self.left = chars
        self.seen: set[bytes] = set()


_SCAN: ContextVar[_ScanBudget | None] = ContextVar("situate_scan", default=None)

#: how much new text (characters, each distinct text once) one evaluation may have its light
#: checks read on the event loop: the regular-expression detectors cost up to some
#: microseconds a character each, so this keeps a try on the loop to milliseconds; a chat's
#: history is cached and costs nothing, so only a long new message goes to a thread
LOOP_SCAN_CHARS = 6000


def try_cached(work: Callable[[], T], *, scan_chars: int = LOOP_SCAN_CHARS) -> T:
    """``work()`` with cached results only: a model that would compute raises
    ``ModelNeeded`` instead, so work whose every score is cached can run on the event loop,
    with no thread hop, and nothing is ever computed there. Light checks may read up to
    ``scan_chars`` characters of text they have no answer for; past that, ``ModelNeeded``."""
    token = _CACHED_ONLY.set(True)
    budget = _SCAN.set(_ScanBudget(scan_chars))
    try:
        return work()
    finally:
        _SCAN.reset(budget)
        _CACHED_ONLY.reset(token)


def cached_only() -> bool:
    return _CACHED_ONLY.get()


def need_model() -> None:
    """Say a model must compute now: raises ``ModelNeeded`` inside ``try_cached``."""
    if _CACHED_ONLY.get():
        raise ModelNeeded


def charge_scan(key: bytes, chars: int) -> None:
    """A light check is about to read a text (``key``, its digest; ``chars`` long) it has no
    cached answer for: inside ``try_cached``, once the try's new text passes its budget,
    raises ``ModelNeeded(scan=True)``. A text already charged in this try costs nothing."""
    budget = _SCAN.get()
    if budget is None or not _CACHED_ONLY.get() or key in budget.seen:
        return
    budget.seen.add(key)
    budget.left -= chars
    if budget.left < 0:
        raise ModelNeeded(scan=True)
