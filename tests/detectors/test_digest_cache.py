"""The detector caches' one shape: digests, never texts; bounded in bytes, and the count is
honest (what the entries really take, as tracemalloc sees it, stays near the bound)."""

from __future__ import annotations

import tracemalloc

from gateway.checks.base import Finding
from gateway.detectors.cache import DigestCache, digest, findings_size


def _findings(seed: int, count: int) -> tuple[Finding, ...]:
    return tuple(Finding(seed + i, seed + i + 5000, "pii:email", 0.93) for i in range(count))


def test_the_bound_in_bytes_holds_and_is_what_the_entries_really_take() -> None:
    bound = 1024 * 1024
    tracemalloc.start()
    try:
        cache: DigestCache[bytes, tuple[Finding, ...]] = DigestCache(bound, findings_size)
        before = tracemalloc.get_traced_memory()[0]
        for index in range(3000):  # many findings per text: a hostile text's worth
            cache.put(digest(f"text {index}"), _findings(index * 1000, index % 40))
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.9 * bound < cache.bytes <= bound
    assert len(cache) < 3000  # the oldest went out
    assert taken < 1.3 * bound, f"the entries take {taken} bytes for a bound of {bound}"


def test_least_recently_used_goes_first_and_an_oversized_value_is_not_kept() -> None:
    cache: DigestCache[bytes, tuple[Finding, ...]] = DigestCache(3000, findings_size)
    keys = [digest(str(index)) for index in range(3)]
    for key in keys:
        cache.put(key, _findings(0, 2))
    assert cache.get(keys[0]) is not None  # used: now the newest
    for index in range(3, 8):
        cache.put(digest(str(index)), _findings(0, 2))
        if keys[1] not in cache:
            break
    assert keys[1] not in cache and keys[0] in cache
    cache.put(digest("huge"), _findings(0, 100))  # larger than the whole bound
    assert digest("huge") not in cache and cache.bytes <= 3000


def test_keys_are_digests_of_the_text() -> None:
    assert digest("a secret") == digest("a secret") != digest("another")
    assert len(digest("\ud800 lone surrogate")) == 32  # as it came, never an error
