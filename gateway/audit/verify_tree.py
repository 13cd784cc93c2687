"""The Merkle tree over a chain as the verifier reads it: leaf hashes fed in order, the root
(and compact range) kept at each size a checkpoint names."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.merkle import EMPTY_ROOT, HASH_SIZE, Frontier


class Tree:
    def __init__(self, sizes: Sequence[int]) -> None:
        self._frontier = Frontier()
        self._wanted = sorted({size for size in sizes if size > 0}, reverse=True)
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}
        self.frontiers: dict[int, Frontier] = {0: Frontier()}

    @property
    def size(self) -> int:
        return self._frontier.size

    def extend(self, hashes: bytes) -> None:
        """Add leaf hashes given as one run of 32-byte values."""
        frontier, wanted = self._frontier, self._wanted
        for offset in range(0, len(hashes), HASH_SIZE):
            frontier.append(hashes[offset : offset + HASH_SIZE])
            if wanted and frontier.size == wanted[-1]:
                wanted.pop()
                self.roots[frontier.size] = frontier.root()
                self.frontiers[frontier.size] = frontier.copy()
