"""The Merkle tree over a chain's entries: RFC 9162 section 2.1 (as RFC 6962).

Leaves are the entries' leaf hashes, SHA-256(0x00 || leaf text), which the chain already
stores; an interior node is SHA-256(0x01 || left || right), and a tree of n > 1 leaves splits
at k, the largest power of two below n. Hashes are bytes here; the chain stores them as hex.

``Frontier`` is the tree's compact range: the roots of the perfect subtrees that make up the
first ``size`` leaves, largest (leftmost) first, one per set bit of ``size``. It is all a
checkpointer has to keep to go on from one checkpoint to the next without rereading the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(ValueError):
    """A frontier's JSON that is not one, or a proof asked for a leaf the tree lacks."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) without copying: the frontier of the range, folded."""
    frontier = Frontier()
    for index in range(start, end):
        frontier.append(leaf_hashes[index])
    return frontier.root()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over the leaf hashes; the empty tree's is SHA-256 of nothing."""
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


class Frontier:
    """The compact range of a tree's first ``size`` leaves, grown a leaf at a time."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise MerkleError(f"a frontier of {size} leaves has {bin(size).count('1')} hashes, "
                              f"not {len(hashes)}")
        if any(len(value) != HASH_SIZE for value in hashes):
            raise MerkleError("a frontier's hashes are 32 bytes each")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """How many leaves the tree has."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtrees' roots, leftmost (largest) first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: merge it with every subtree of its own height to its left."""
        node = leaf
        carry = self._size
        while carry & 1:
            node = node_hash(self._hashes.pop(), node)
            carry >>= 1
        self._hashes.append(node)
        self._size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves so far: the subtrees folded from the right."""
        if not self._hashes:
            return EMPTY_ROOT
        node = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            node = node_hash(left, node)
        return node

    def copy(self) -> Frontier:
        """An independent frontier at the same size."""
        return Frontier(self._size, self._hashes)

    def to_json(self) -> dict[str, Any]:
        """``{"size": n, "hashes": [hex, ...]}``, as audit_checkpoints.frontier stores it."""
        return {"size": self._size, "hashes": [value.hex() for value in self._hashes]}

    @classmethod
    def from_json(cls, value: Any) -> Frontier:
        """The frontier ``to_json`` wrote; MerkleError for anything else."""
        if not isinstance(value, dict) or set(value) != {"size", "hashes"}:
            raise MerkleError("a frontier is {\"size\": n, \"hashes\": [hex, ...]}")
        size, hashes = value["size"], value["hashes"]
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(hashes, list):
            raise MerkleError("a frontier's size is an integer and its hashes a list")
        try:
            decoded = [bytes.fromhex(item) for item in hashes]
        except (TypeError, ValueError) as exc:
            raise MerkleError("a frontier's hashes are hex strings") from exc
        return cls(size, decoded)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __hash__(self) -> int:
        return hash((self._size, tuple(self._hashes)))

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 2.1.3.1: the sibling hashes from the leaf up."""
    if not 0 <= index < len(leaf_hashes):
        raise MerkleError(f"leaf {index} is not in a tree of {len(leaf_hashes)}")
    path: list[bytes] = []
    start, end = 0, len(leaf_hashes)
    # Walk down from the root, noting each sibling subtree; the path lists them bottom-up.
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            path.append(_range_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            path.append(_range_root(leaf_hashes, start, start + k))
            start += k
    path.reverse()
    return path


def inclusion_proof_after(left: Frontier, right: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) for m = ``left.size`` and n = m + ``len(right)``, from the compact range
    of the leaves before m and the leaf hashes from m on: the siblings on the left of a
    leaf's path are exactly the compact range of the leaves before it, so a proof needs none
    of those leaves, only the ones after it (a checkpoint's frontier gives the rest)."""
    index, size = left.size, left.size + len(right)
    if not right:
        raise MerkleError(f"leaf {index} is not in a tree of {size}")
    lefts = iter(left.hashes)
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            path.append(_range_root(right, start + k - index, end - index))
            end = start + k
        else:
            path.append(next(lefts))
            start += k
    path.reverse()
    return path


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: whether ``proof`` shows leaf ``index`` of a tree of ``size`` under
    ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    node = leaf_hash
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and node == root
