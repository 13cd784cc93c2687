"""``injection``: the heuristic detector, a cheap first stage before the learned model.

Known prompt-injection shapes (``signals``, ``roles``), matched over normalised views
(``matcher``, ``views``) and inside decoded blobs (``decoder``), scoring at least the rule's
``threshold``. Every finding says it came from this stage (``source: heuristic:injection``), so
a decision shows whether a heuristic or the model decided.

Findings are cached per text by its digest, never by the text itself: a chat resends its whole
history with every turn, and the cache must not keep what users wrote in memory.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import replace
from threading import Lock
from typing import Any, ClassVar

from pydantic import Field

from gateway.checks.base import Finding
from gateway.checks.injection.decoder import MAX_BLOB
from gateway.checks.injection.matcher import all_findings
from gateway.checks.params import StrictParams, parse_params

SOURCE = "heuristic:injection"


class InjectionParams(StrictParams):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class DigestCache:
    """A bounded least-recently-used map from a text's sha256 digest to its findings."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: OrderedDict[bytes, tuple[Finding, ...]] = OrderedDict()
        self._lock = Lock()

    def findings(self, text: str) -> tuple[Finding, ...]:
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        found = tuple(replace(f, source=SOURCE) for f in all_findings(text))
        with self._lock:
            self._items[key] = found
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return found


class InjectionCheck:
    """Known prompt-injection shapes scoring at least ``threshold``."""

    name: ClassVar[str] = "injection"
    #: one per process, shared by every rule: findings do not depend on the threshold
    _cache: ClassVar[DigestCache] = DigestCache()

    def __init__(self, params: Any) -> None:
        self._threshold = parse_params(self.name, InjectionParams, params).threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def max_span(self) -> int:
        return MAX_BLOB

    def find(self, text: str) -> list[Finding]:
        kept = [f for f in self._cache.findings(text) if f.score >= self._threshold]
        kept.sort(key=lambda finding: (finding.start, finding.end, finding.label))
        return kept
