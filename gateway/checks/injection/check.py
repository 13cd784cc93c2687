"""``injection``: the heuristic detector, a cheap first stage before the learned model.

Known prompt-injection shapes (``signals``, ``roles``), matched over normalised views
(``matcher``, ``views``) and inside decoded blobs (``decoder``), scoring at least the rule's
``threshold``. Every finding says it came from this stage (``source: heuristic:injection``), so
a decision shows whether a heuristic or the model decided.

Findings are cached per text by its digest, never by the text itself: a chat resends its whole
history with every turn, and the cache must not keep what users wrote in memory.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field

from gateway.checks.base import Finding
from gateway.checks.injection.decoder import MAX_BLOB
from gateway.checks.injection.matcher import all_findings
from gateway.checks.params import StrictParams, parse_params
from gateway.detectors.cache import DigestCache, digest, findings_size

SOURCE = "heuristic:injection"


class InjectionParams(StrictParams):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


#: what the heuristic's findings per text may hold, shared by every rule that runs it
CACHE_BYTES = 4 * 1024 * 1024


class _Memo:
    """The heuristic's findings by the text's digest, bounded in bytes (``DigestCache``)."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.cache: DigestCache[bytes, tuple[Finding, ...]] = DigestCache(
            max_bytes, findings_size
        )

    def findings(self, text: str) -> tuple[Finding, ...]:
        key = digest(text)
        found = self.cache.get(key)
        if found is None:
            found = tuple(replace(f, source=SOURCE) for f in all_findings(text))
            self.cache.put(key, found)
        return found


class InjectionCheck:
    """Known prompt-injection shapes scoring at least ``threshold``."""

    name: ClassVar[str] = "injection"
    #: one per process, shared by every rule: findings do not depend on the threshold
    _cache: ClassVar[_Memo] = _Memo()

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
