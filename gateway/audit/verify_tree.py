"""The Merkle tree over a chain as the verifier reads it: leaf hashes fed in order, the root
(and compact range) kept at each size a checkpoint names, and the leaves receipts prove."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.merkle import EMPTY_ROOT, HASH_SIZE, Frontier


class Tree:
    def __init__(self, sizes: Sequence[int], leaves: Sequence[int] = ()) -> None:
        self._frontier = Frontier()
        #: the leaf hashes kept by position (the entries receipts prove)
        self.leaves: dict[int, bytes] = {}
        self._leaves = frozenset(leaves)
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
            leaf = hashes[offset : offset + HASH_SIZE]
            if frontier.size in self._leaves:
                self.leaves[frontier.size] = leaf
            frontier.append(leaf)
            if wanted and frontier.size == wanted[-1]:
                wanted.pop()
                self.roots[frontier.size] = frontier.root()
                self.frontiers[frontier.size] = frontier.copy()
