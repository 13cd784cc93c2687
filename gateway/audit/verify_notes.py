"""The checkpoints a verification checks: the chain's stored ones and notes from outside
(files an operator, a witness or a client kept). Each must be signed by the verifier key,
name this chain in its origin line, and be a prefix of the log as it is now: the log has at
least its size entries and the Merkle root of the first ``size`` is the one signed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.audit.checkpoints import origin_of
from gateway.audit.keys import AuditKeys
from gateway.audit.merkle import Frontier, MerkleError
from gateway.audit.note import NoteError, open_checkpoint, parse_body, vkey
from gateway.audit.verify_diff import Problem
from gateway.audit.verify_tree import Tree
from gateway.config.observe import AuditConfig


@dataclass(frozen=True)
class NoteSource:
    """A checkpoint's note and where it came from (a file, or the stored row)."""

    name: str
    text: str
    #: the audit_checkpoints row it was read from, if stored
    row: Mapping[str, Any] | None = None

    def origin(self) -> str:
        return self.text.split("\n", 1)[0]

    def size(self) -> int | None:
        """The size its body states, signature unchecked (None: not a checkpoint)."""
        cut = self.text.rfind("\n\n")
        try:
            return parse_body(self.text[: cut + 1])[1] if cut >= 0 else None
        except NoteError:
            return None


def default_vkey(audit: AuditConfig) -> str:
    """The verifier key of the signing key in ``audit.keys_dir``."""
    return vkey(audit.key_name, AuditKeys.load(audit, create=False).public_key)


def route_notes(audit: AuditConfig, chains: Sequence[str], notes: Sequence[NoteSource]
                ) -> tuple[dict[str, list[NoteSource]], list[Problem]]:
    """Outside notes by the chain their origin names; a problem for each that names none."""
    by_origin = {origin_of(audit, chain): chain for chain in chains}
    routed: dict[str, list[NoteSource]] = {}
    stray: list[Problem] = []
    for note in notes:
        chain = by_origin.get(note.origin())
        if chain is None:
            stray.append(Problem("checkpoint_origin", None, note.size(), None,
                                 f"{note.name}: its origin {note.origin()!r} is not a chain "
                                 "verified here"))
        else:
            routed.setdefault(chain, []).append(note)
    return routed, stray


def check_notes(audit: AuditConfig, key: str, chain: str, tree: Tree,
                notes: Sequence[NoteSource]) -> list[Problem]:
    """Each note against the log whose roots ``tree`` kept."""
    problems = []
    for note in notes:
        problem = _check(audit, key, chain, tree, note)
        if problem is not None:
            problems.append(problem)
    return problems


def _check(audit: AuditConfig, key: str, chain: str, tree: Tree,
           note: NoteSource) -> Problem | None:
    try:
        checkpoint = open_checkpoint(note.text, key)
    except NoteError as exc:
        return Problem("checkpoint_signature", chain, note.size(), None, f"{note.name}: {exc}")
    size = checkpoint.size
    if checkpoint.origin != origin_of(audit, chain):
        return Problem("checkpoint_origin", chain, size, None,
                       f"{note.name}: its origin {checkpoint.origin!r} is not this chain's")
    if note.row is not None and (note.row["size"] != size
                                 or note.row["root"] != checkpoint.root.hex()):
        return Problem("checkpoint_edited", chain, size, None,
                       f"{note.name}: the row's size or root is not what its note signed")
    if size > tree.size:
        return Problem("truncated", chain, tree.size, None,
                       f"{note.name} was signed over {size} entries; the log has {tree.size}")
    if tree.roots.get(size) != checkpoint.root:
        return Problem("checkpoint_not_prefix", chain, size, None,
                       f"{note.name}: the log's first {size} entries have another Merkle root "
                       "than the one signed (the log was rewritten since)")
    if note.row is not None and not _same_frontier(note.row.get("frontier"),
                                                   tree.frontiers.get(size)):
        return Problem("checkpoint_edited", chain, size, None,
                       f"{note.name}: its stored compact range is not the tree's")
    return None


def _same_frontier(stored: Any, expected: Frontier | None) -> bool:
    try:
        return expected is not None and Frontier.from_json(stored) == expected
    except MerkleError:
        return False
