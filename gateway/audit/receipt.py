"""Checking a caller's receipt offline: with the receipt and the gateway's published verifier
key only, no database and no gateway.

A receipt (``GET /v1/receipts/{request_id}``) holds the exchange's chain entry as the canonical
JSON that was hashed, a signed checkpoint and the inclusion proof between them. It checks out
when the leaf hashes to ``leaf_hash`` and says what the receipt says (its chain, sequence
number, the exchange's id), the checkpoint is signed by the key, its origin names the chain
and its size is the receipt's, and the proof leads from the leaf to the checkpoint's root.
Then the gateway cannot later drop or change that record without its chain disagreeing with a
checkpoint it signed: the caller holds the evidence.

The receipt's own ``verifier_key`` is not trusted: the caller passes the key it got from the
operator (``gateway audit key``), or a forger would sign with its own.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.audit.merkle import leaf_hash, verify_inclusion
from gateway.audit.note import Checkpoint, NoteError, open_checkpoint


class ReceiptError(ValueError):
    """A receipt that does not check out, and why."""


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a receipt that checked out proves: this exchange is entry ``seq`` of ``chain``,
    under a checkpoint the key signed."""

    request_id: str
    chain: str
    seq: int
    checkpoint: Checkpoint
    leaf: dict[str, Any]


def _field(receipt: Mapping[str, Any], name: str, kind: type) -> Any:
    value = receipt.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ReceiptError(f"malformed receipt: {name} is not a {kind.__name__}")
    return value


def _leaf(receipt: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    text: str = _field(receipt, "leaf", str)
    data = text.encode("utf-8")
    if leaf_hash(data).hex() != _field(receipt, "leaf_hash", str):
        raise ReceiptError("the leaf does not hash to leaf_hash: the record was changed")
    try:
        leaf = json.loads(text)
    except ValueError as exc:
        raise ReceiptError("malformed receipt: the leaf is not JSON") from exc
    if not isinstance(leaf, dict) or not isinstance(leaf.get("body"), dict):
        raise ReceiptError("malformed receipt: the leaf is not a chain entry")
    return data, leaf


def _agrees(receipt: Mapping[str, Any], leaf: Mapping[str, Any]) -> None:
    """The leaf says what the receipt says: this exchange, at this place of this chain."""
    expected = {
        "chain": receipt["chain"], "seq": receipt["seq"], "kind": "exchange",
    }
    for name, value in expected.items():
        if leaf.get(name) != value:
            raise ReceiptError(f"the leaf's {name} is {leaf.get(name)!r}, not {value!r}")
    if leaf["body"].get("id") != receipt["request_id"]:
        raise ReceiptError(f"the leaf records exchange {leaf['body'].get('id')!r}, "
                           f"not {receipt['request_id']!r}")


def _checkpoint(receipt: Mapping[str, Any], vkey: str, origin: str | None) -> Checkpoint:
    try:
        checkpoint = open_checkpoint(_field(receipt, "checkpoint", str), vkey)
    except NoteError as exc:
        raise ReceiptError(f"the checkpoint does not check out: {exc}") from exc
    chain = receipt["chain"]
    if origin is not None and checkpoint.origin != f"{origin}/{chain}":
        raise ReceiptError(f"the checkpoint's origin is {checkpoint.origin!r}, "
                           f"not {origin}/{chain}")
    if not checkpoint.origin.endswith(f"/{chain}"):
        raise ReceiptError(f"the checkpoint's origin {checkpoint.origin!r} is not chain {chain}'s")
    if checkpoint.size != receipt["tree_size"]:
        raise ReceiptError(f"the checkpoint is of {checkpoint.size} entries, the receipt says "
                           f"{receipt['tree_size']}")
    return checkpoint


def _proof(receipt: Mapping[str, Any]) -> list[bytes]:
    proof = _field(receipt, "inclusion_proof", list)
    try:
        return [base64.b64decode(item, validate=True) for item in proof]
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ReceiptError("malformed receipt: the inclusion proof is not base64") from exc


def verify_receipt(receipt: Mapping[str, Any], vkey: str, *,
                   origin: str | None = None) -> VerifiedReceipt:
    """Check a receipt with the operator's verifier key (and, when given, the origin the
    operator publishes, ``audit.origin``); ReceiptError says what fails."""
    if receipt.get("object") != "receipt":
        raise ReceiptError("malformed receipt: its object is not \"receipt\"")
    request_id = _field(receipt, "request_id", str)
    chain = _field(receipt, "chain", str)
    seq = _field(receipt, "seq", int)
    size = _field(receipt, "tree_size", int)
    data, leaf = _leaf(receipt)
    _agrees(receipt, leaf)
    checkpoint = _checkpoint(receipt, vkey, origin)
    if not verify_inclusion(seq, size, leaf_hash(data), _proof(receipt), checkpoint.root):
        raise ReceiptError(f"the inclusion proof does not lead from entry {seq} to the "
                           f"checkpoint's root: the record is not in the tree it signed")
    return VerifiedReceipt(request_id, chain, seq, checkpoint, leaf)
