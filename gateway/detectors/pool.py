"""The bounded worker pool that runs learned detectors off the event loop.

Two kinds of work go through it, on two executors, so that one can wait for the other:

- *evaluations* (``run``): a heavy policy's synchronous evaluation (admit a request, review an
  answer, feed a stream's guard) moved off the event loop as a whole. At most ``workers * 4``
  run at once (they mostly wait for scores); the rest wait on the event loop, cancellably.
- *scores* (``score``): one model's probabilities for one text. At most ``workers`` run at
  once; at most ``queue`` more wait for a thread, beyond which a score fails at once
  (``DetectorBusy``) and the rule's ``on_error`` decides, rather than queueing without end.

An evaluation whose light checks would read a long new text on the event loop (past
``LOOP_SCAN_CHARS``, ``gateway.detectors.model``) runs on an evaluation thread too, and such
scans take turns (``SCANS_AT_ONCE``): they hold the GIL, and the event loop should share the
interpreter with one of them, not with all.

Scores are cached by the SHA-256 digest of the text (never the text itself: the cache must not
keep what users wrote, whatever the policy records), per model revision, in a bounded LRU: a
chat resends its whole history every turn, and the history costs nothing the second time. Two
requests that need the same score at once share one computation.

The wait for a score honours the check's budget: past it, ``DetectorTimeout`` is raised in the
waiting evaluation. The model's thread cannot be interrupted; it finishes in the background and
its score still lands in the cache (the next identical text is free).

Threads are the default because numpy, and models built on it, release the GIL while they
compute. A model that holds the GIL (pure Python) says so with ``releases_gil = False``; its
scores run in worker processes instead (``workers`` of them, started with ``spawn``), each of
which loads the model once by its spec, and is told to as soon as a policy names it, so the
first request does not pay for the load. Executors are created on first use, so a pool nobody
uses costs nothing, and a policy compiled only to be read never starts a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

import anyio

from gateway.config.sections import DetectorsConfig
from gateway.detectors.model import ModelNeeded, TextModel, need_model, try_cached

T = TypeVar("T")
Scores = dict[str, float]

DEFAULT_QUEUE = 64
DEFAULT_CACHE_ENTRIES = 8192
#: evaluations per scoring thread: an evaluation mostly waits for its scores
EVALUATIONS_PER_WORKER = 4
#: evaluations at once whose light checks read a long new text (they hold the GIL)
SCANS_AT_ONCE = 1
#: how long a thread may hold the GIL while another waits (``sys.setswitchinterval``), while
#: a long scan runs
SWITCH_INTERVAL_S = 0.001


class _ShortSwitch:
    """The interpreter's switch interval at ``SWITCH_INTERVAL_S`` while any long scan runs, in
    any pool (the setting is the process's, so its holders are counted process-wide), and as
    it was once the last one ends."""

    def __init__(self) -> None:
        self._holders = 0
        self._previous = sys.getswitchinterval()
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._previous = sys.getswitchinterval()
                sys.setswitchinterval(min(self._previous, SWITCH_INTERVAL_S))
            self._holders += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                sys.setswitchinterval(self._previous)


#: one for the process, as the switch interval is
_SHORT_SWITCH = _ShortSwitch()


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


#: what a model scores once when a policy names it, to load what it loads on first use
WARM_UP = "warm-up"

class DetectorError(RuntimeError):
    """A learned detector could not give a score; the rule's ``on_error`` decides."""


class DetectorTimeout(DetectorError, TimeoutError):
    """The score took longer than the check's budget."""


class DetectorBusy(DetectorError):
    """The pool's queue is full: more texts wait for a model than it is bounded to hold."""


def holds_gil(model: TextModel) -> bool:
    """Whether the model says its scoring holds the GIL (then it runs in processes)."""
    return getattr(model, "releases_gil", True) is False


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class PoolSettings:
    workers: int
    queue: int = DEFAULT_QUEUE
    cache_entries: int = DEFAULT_CACHE_ENTRIES
    #: warm a model when a policy names it (the server); a command scores only what it needs
    #: and must not wait at exit for a warm-up it never used
    warm: bool = False

    @classmethod
    def of(cls, config: DetectorsConfig, *, warm: bool = False) -> PoolSettings:
        return cls(config.workers or default_workers(), config.queue, config.cache_entries, warm)


class ScoreCache:
    """A thread-safe LRU of scores keyed by (model revision, text digest)."""

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, bytes], Scores] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, bytes]) -> Scores | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple[str, bytes], scores: Scores) -> None:
        if self._entries <= 0:
            return
        with self._lock:
            self._items[key] = scores
            self._items.move_to_end(key)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class DetectorPool:
    """Owned by the gateway's lifespan (or a command's run); ``close`` ends its threads."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.cache = ScoreCache(settings.cache_entries)
        self._lock = threading.Lock()
        self._scorer: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._evaluator: ThreadPoolExecutor | None = None
        self._inflight: dict[tuple[str, bytes], Future[Scores]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._scans: asyncio.Semaphore | None = None
        self._closed = False

    @property
    def evaluations(self) -> int:
        return self.settings.workers * EVALUATIONS_PER_WORKER

    @property
    def pending(self) -> int:
        """Scores computing or waiting for a thread."""
        with self._lock:
            return len(self._inflight)

    def prepare(self, model: TextModel, spec: str) -> None:
        """A policy names this model: a GIL-holding one is loaded in each process now; any
        other scores a warm-up text on a worker thread, so what the model loads on first use
        (the sentence encoder) is loaded before the first request waits on it."""
        if holds_gil(model):
            with self._lock:
                for _ in range(self.settings.workers):
                    self._in_process(_load_by_spec, spec)
            return
        key = (f"{model.info.name}@{model.info.revision}", text_digest(WARM_UP))
        if self.settings.warm and self.cache.get(key) is None:
            with contextlib.suppress(DetectorError):
                self._submit(key, model, WARM_UP, spec)

    def score(
        self, model: TextModel, text: str, budget_s: float, spec: str | None = None
    ) -> Scores:
        """The model's scores for ``text``, from the cache or computed within ``budget_s``.
        ``spec`` (the catalog's) lets a GIL-holding model be loaded in a worker process."""
        info = model.info
        key = (f"{info.name}@{info.revision}", text_digest(text))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        need_model()  # on the event loop (try_cached): the caller goes to a thread instead
        future = self._submit(key, model, text, spec)
        try:
            return future.result(timeout=budget_s)
        except TimeoutError as exc:
            raise DetectorTimeout(
                f"model {info.name!r} gave no score within its budget of "
                f"{budget_s * 1000:g} ms ({self.pending} texts in the pool)"
            ) from exc

    def _submit(
        self, key: tuple[str, bytes], model: TextModel, text: str, spec: str | None = None
    ) -> Future[Scores]:
        with self._lock:
            running = self._inflight.get(key)
            if running is not None:
                return running  # the same text, asked for at the same time: one computation
            if len(self._inflight) >= self.settings.workers + self.settings.queue:
                raise DetectorBusy(
                    f"the detector pool is full ({len(self._inflight)} texts waiting for "
                    f"{self.settings.workers} workers); model {model.info.name!r} not run"
                )
            if spec is not None and holds_gil(model):
                future = self._in_process(_score_by_spec, spec, text)
            else:
                future = self._executor(processes=False).submit(_score_one, model, text)
            self._inflight[key] = future
        future.add_done_callback(lambda done: self._settle(key, done))
        return future

    def _settle(self, key: tuple[str, bytes], future: Future[Scores]) -> None:
        with self._lock:
            self._inflight.pop(key, None)
        if not future.cancelled() and future.exception() is None:
            self.cache.put(key, future.result())

    def _in_process(self, work: Callable[..., T], *args: str) -> Future[T]:
        """Submit to the worker processes (the caller holds ``_lock``); a pool broken by a
        process that died (a model that crashed the interpreter) is replaced, not kept."""
        try:
            return self._executor(processes=True).submit(work, *args)
        except BrokenProcessPool:
            self._processes = None
            return self._executor(processes=True).submit(work, *args)

    def _executor(self, *, processes: bool) -> Executor:
        """The scoring executor, made on first use (the caller holds ``_lock`` or needs none)."""
        if self._closed:
            raise DetectorError("the detector pool is shut down")
        if processes:
            if self._processes is None:
                context = multiprocessing.get_context("spawn")  # never fork a threaded server
                self._processes = ProcessPoolExecutor(self.settings.workers, mp_context=context)
            return self._processes
        if self._scorer is None:
            self._scorer = ThreadPoolExecutor(self.settings.workers, "situate-score")
        return self._scorer

    async def evaluate(
        self, heavy: bool, work: Callable[[], T], *, undo: Callable[[], None] | None = None
    ) -> T:
        """``work()``: on an evaluation thread when ``heavy`` (the policy runs a model), else
        right here on the event loop (cheap checks do not pay for a thread hop).

        With ``undo`` (which takes back what a started ``work`` did), work is first tried here
        with cached scores only and a bounded scan (``try_cached``): when every model's score
        is cached (a chat resends its history; the same question again) and the new text is
        short, nothing computes and no thread is needed. The first model that would compute,
        or the first check that would read past the loop's scan budget, stops the try;
        ``undo`` runs and the work goes to a thread. Work stopped by its scan holds the GIL
        (regular expressions over a long text): such work takes turns, ``SCANS_AT_ONCE`` at
        a time, so the event loop shares the interpreter with one of them, not with all."""
        if undo is None:
            return await self.run(work) if heavy else work()
        try:
            return try_cached(work)
        except ModelNeeded as needed:
            undo()
            if not needed.scan:
                return await self.run(work)
        if self._scans is None:
            self._scans = asyncio.Semaphore(SCANS_AT_ONCE)
        async with self._scans:
            # While a scan holds the GIL, the loop gets it back after 1 ms rather than
            # CPython's 5; only then: a shorter interval everywhere costs every request.
            with _SHORT_SWITCH:
                return await self.run(work)

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on an evaluation thread; the event loop waits without blocking.

        Once started, the work is waited for to its end even when the caller is cancelled (a
        client leaving): it fills the caller's decision, from which the record is then written,
        and its checks' budgets bound how long that takes. The slot is freed when the thread is.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.evaluations)
        slots = self._slots
        await slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            future = self._evaluators().submit(work)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(lambda _: _call_soon(loop, slots.release))
        waiting = asyncio.wrap_future(future)
        cancelled = False
        # An anyio cancel is held off by the shield; a plain task's cancel goes through it, and
        # is held off here: either way the thread is waited for, then the cancel goes on.
        with anyio.CancelScope(shield=True):
            while True:
                try:
                    result = await asyncio.shield(waiting)
                    break
                except asyncio.CancelledError:
                    if waiting.done():
                        raise
                    cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return result

    def _evaluators(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise DetectorError("the detector pool is shut down")
            if self._evaluator is None:
                self._evaluator = ThreadPoolExecutor(self.evaluations, "situate-evaluate")
            return self._evaluator

    def close(self) -> None:
        """Stop taking work; drop what waits for a thread; let running work finish. Worker
        processes are waited for (one score at most each), so none outlives the gateway."""
        with self._lock:
            self._closed = True
            threads = [e for e in (self._evaluator, self._scorer) if e is not None]
            processes = self._processes
        for executor in threads:
            executor.shutdown(wait=False, cancel_futures=True)
        if processes is not None:
            processes.shutdown(wait=True, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed (the gateway stopped) meanwhile
        loop.call_soon_threadsafe(callback)


def _load_by_spec(spec: str) -> None:
    from gateway.detectors.catalog import load_model  # in a worker process: once per spec

    load_model(spec)


def _score_by_spec(spec: str, text: str) -> Scores:
    from gateway.detectors.catalog import load_model

    return _score_one(load_model(spec), text)


def _score_one(model: TextModel, text: str) -> Scores:
    (scores,) = _checked(model, model.score([text]), 1)
    return scores


def _checked(model: TextModel, scores: Sequence[Scores], expected: int) -> list[Scores]:
    if len(scores) != expected:
        raise DetectorError(
            f"model {model.info.name!r} returned {len(scores)} scores for {expected} texts"
        )
    return [dict(s) for s in scores]
