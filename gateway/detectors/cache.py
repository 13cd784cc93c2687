"""The one shape of every detector cache: a text's SHA-256 digest to what was found in it,
least recently used first out, bounded in bytes.

Never the text itself (a chat resends its whole history every turn, and the cache must not keep
what users wrote, whatever the policy records), and never anything whose size grows with the
text's length unless it is counted: an entry's cost is its key, the map's own overhead, and
what ``size_of`` says its value holds, so a hostile text with thousands of findings costs its
share of the bound and pushes older entries out rather than growing the process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: what one entry costs besides its value: the digest (a bytes of 32), the map's node, the key
ENTRY_OVERHEAD = 160


def digest(text: str) -> bytes:
    """The key of a text: its SHA-256 digest (lone surrogates included, as they came)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class DigestCache(Generic[K, V]):
    """A thread-safe LRU bounded by ``max_bytes`` (as ``size_of`` and the overhead count it).

    A value larger than the whole bound is not kept at all (it would evict everything)."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found[0]

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: K, value: V) -> None:
        cost = ENTRY_OVERHEAD + self._size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if cost > self.max_bytes:
                return
            self._items[key] = (value, cost)
            self._bytes += cost
            while self._bytes > self.max_bytes:
                _, (_, freed) = self._items.popitem(last=False)
                self._bytes -= freed

    @property
    def bytes(self) -> int:
        """What the entries cost, as counted (never more than ``max_bytes``)."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


#: what one ``Finding`` costs in a cached tuple: the object with its fields (the label and the
#: source are shared strings), and the tuple's slot
FINDING_BYTES = 160


def findings_size(found: tuple[object, ...]) -> int:
    return 56 + FINDING_BYTES * len(found)
