"""The Merkle tree against RFC 6962's test vectors and a plain recursive reading of RFC 9162."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.merkle import (
    Frontier,
    MerkleError,
    inclusion_proof,
    inclusion_proof_after,
    leaf_hash,
    node_hash,
    root,
    verify_inclusion,
)

# Certificate Transparency's test data (trillian merkle/testonly): eight leaves and the root
# of the tree of their first n, n = 1..8.
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# The same data's inclusion proofs of leaf 0 and leaf 5 in the tree of eight.
CT_PROOF_0_8 = ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]
CT_PROOF_5_8 = ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]


def _reference_root(hashes: list[bytes]) -> bytes:
    """MTH as RFC 9162 2.1.1 writes it."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


def _reference_path(m: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) as RFC 9162 2.1.3.1 writes it."""
    if len(hashes) <= 1:
        return []
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    if m < k:
        return [*_reference_path(m, hashes[:k]), _reference_root(hashes[k:])]
    return [*_reference_path(m - k, hashes[k:]), _reference_root(hashes[:k])]


def _hashes(count: int) -> list[bytes]:
    return [leaf_hash(index.to_bytes(4, "big")) for index in range(count)]


def test_the_certificate_transparency_roots() -> None:
    hashes = [leaf_hash(data) for data in CT_LEAVES]
    assert [root(hashes[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    assert root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_the_certificate_transparency_proofs() -> None:
    hashes = [leaf_hash(data) for data in CT_LEAVES]
    assert [p.hex() for p in inclusion_proof(0, hashes)] == CT_PROOF_0_8
    assert [p.hex() for p in inclusion_proof(5, hashes)] == CT_PROOF_5_8
    top = bytes.fromhex(CT_ROOTS[-1])
    assert verify_inclusion(5, 8, hashes[5], [bytes.fromhex(p) for p in CT_PROOF_5_8], top)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=70))
def test_every_index_of_a_tree_proves_and_only_where_it_is(size: int) -> None:
    hashes = _hashes(size)
    top = root(hashes)
    assert top == _reference_root(hashes)
    for index in range(size):
        proof = inclusion_proof(index, hashes)
        assert proof == _reference_path(index, hashes)
        assert verify_inclusion(index, size, hashes[index], proof, top)
        assert not verify_inclusion(index, size, leaf_hash(b"other"), proof, top)
        if size > 1:
            assert not verify_inclusion((index + 1) % size, size, hashes[index], proof, top)
            assert not verify_inclusion(index, size, hashes[index], proof[:-1], top)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=90), st.data())
def test_a_proof_from_the_frontier_before_the_leaf_is_the_same(size: int,
                                                               data: st.DataObject) -> None:
    hashes = _hashes(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    left = Frontier()
    left.extend(hashes[:index])
    assert inclusion_proof_after(left, hashes[index:]) == inclusion_proof(index, hashes)


def test_a_proof_refuses_a_leaf_out_of_the_tree() -> None:
    hashes = _hashes(3)
    with pytest.raises(MerkleError):
        inclusion_proof(3, hashes)
    with pytest.raises(MerkleError):
        inclusion_proof_after(Frontier(), [])
    assert not verify_inclusion(3, 3, hashes[0], [], root(hashes))
    assert not verify_inclusion(0, 0, hashes[0], [], root([]))


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_a_frontier_is_the_root_at_every_size(size: int) -> None:
    hashes = _hashes(size)
    frontier = Frontier()
    assert frontier.root() == root([])
    for count, value in enumerate(hashes, start=1):
        frontier.append(value)
        assert frontier.size == count
        assert frontier.root() == _reference_root(hashes[:count])
    assert len(frontier.hashes) == bin(size).count("1")
    again = Frontier.from_json(frontier.to_json())
    assert again == frontier
    assert again.root() == frontier.root()


def test_a_frontier_goes_on_from_its_json() -> None:
    hashes = _hashes(45)
    first = Frontier()
    first.extend(hashes[:29])
    resumed = Frontier.from_json(first.to_json())
    resumed.extend(hashes[29:])
    assert resumed.root() == root(hashes)
    assert first.size == 29


@pytest.mark.parametrize("value", [
    None, [], {"size": 3}, {"size": 3, "hashes": ["00" * 32]},
    {"size": 1, "hashes": ["zz"]}, {"size": 1, "hashes": ["00" * 31]},
    {"size": True, "hashes": ["00" * 32]}, {"size": -1, "hashes": []},
    {"size": 1, "hashes": ["00" * 32], "extra": 1},
])
def test_a_frontier_refuses_what_is_not_one(value: object) -> None:
    with pytest.raises(MerkleError):
        Frontier.from_json(value)
