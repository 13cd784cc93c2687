"""Callers' receipts checked against the log as it is now: each must check out offline
(``gateway.audit.receipt``: its leaf, checkpoint signature and inclusion proof), and the
log must still hold what it proves: its checkpoint a prefix of the log (checked with the
other checkpoints) and the same entry at the same place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.audit.merkle import leaf_hash
from gateway.audit.note import NoteError, open_checkpoint
from gateway.audit.receipt import ReceiptError, verify_receipt
from gateway.audit.verify_diff import Problem
from gateway.audit.verify_notes import NoteSource
from gateway.audit.verify_tree import Tree
from gateway.config.observe import AuditConfig


@dataclass(frozen=True)
class ReceiptSource:
    """A receipt as a caller kept it (the JSON of ``GET /v1/receipts/{id}``), and its name."""

    name: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Held:
    """A receipt that checked out: the entry it proves, to find in the log."""

    name: str
    chain: str
    seq: int
    request_id: str
    leaf_hash: bytes
    note: NoteSource


def _kind(data: Mapping[str, Any], key: str) -> str:
    """Which part of a receipt that does not check out fails first."""
    try:
        open_checkpoint(str(data.get("checkpoint")), key)
    except NoteError:
        return "checkpoint_signature"
    leaf = data.get("leaf")
    if not isinstance(leaf, str) or leaf_hash(leaf.encode()).hex() != data.get("leaf_hash"):
        return "receipt_leaf"
    return "inclusion_proof"


def open_receipts(audit: AuditConfig, key: str, receipts: Sequence[ReceiptSource]
                  ) -> tuple[list[Held], list[Problem]]:
    """The receipts that check out offline, and a problem for each that does not."""
    held: list[Held] = []
    problems: list[Problem] = []
    for source in receipts:
        data = source.data
        try:
            proved = verify_receipt(data, key, origin=audit.origin)
        except ReceiptError as exc:
            seq = data.get("seq") if isinstance(data.get("seq"), int) else None
            chain, request = data.get("chain"), data.get("request_id")
            problems.append(Problem(_kind(data, key), chain if isinstance(chain, str) else None,
                                    seq, request if isinstance(request, str) else None,
                                    f"{source.name}: {exc}"))
            continue
        note = NoteSource(f"{source.name}'s checkpoint", proved.checkpoint.text)
        held.append(Held(source.name, proved.chain, proved.seq, proved.request_id,
                         bytes.fromhex(str(data["leaf_hash"])), note))
    return held, problems


def check_held(chain: str, tree: Tree, held: Sequence[Held]) -> list[Problem]:
    """Each receipt's entry against the log's entry at its place."""
    problems = []
    for receipt in held:
        found = tree.leaves.get(receipt.seq)
        if found == receipt.leaf_hash:
            continue
        detail = ("the log has no entry there" if found is None
                  else "the log's entry there is not the one the receipt proves")
        problems.append(Problem("deleted" if found is None else "edited", chain, receipt.seq,
                                receipt.request_id, f"{receipt.name}: {detail}"))
    return problems
