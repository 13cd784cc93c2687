"""What differs in an entry whose leaf does not match: the verifier's slow path.

An entry whose stored leaf is not the leaf rebuilt from the tables is opened up here and
compared part by part: its position (a leaf naming another sequence number is out of place:
reordered, or its neighbours removed or inserted), its link to the previous entry, its chain
and kind, each field of the exchange row, and the commitments to its content. A commitment
that no longer matches is excused only by an erasure (docs/audit.md "Retention and
erasure"): the body is gone (a request or response) or it is the decision, whose text-bearing
notes an erasure removes, and some erasure event on any chain covers the exchange.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.audit.leaf import LEAF_VERSION

#: the content commitments and the columns they commit to
CONTENT = {"request": "request_body", "response": "response_body", "decision": "decision"}


@dataclass(frozen=True)
class Problem:
    """One broken place: what kind, where (chain, seq, exchange id), what differs."""

    kind: str
    chain: str | None
    seq: int | None
    exchange: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "chain": self.chain, "seq": self.seq,
                "exchange": self.exchange, "detail": self.detail}

    def say(self) -> str:
        where = [f"chain {self.chain}" if self.chain is not None else "no chain"]
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.exchange is not None:
            where.append(f"exchange {self.exchange}")
        return f"{self.kind} at {', '.join(where)}: {self.detail}"


@dataclass(frozen=True)
class Erasures:
    """Which exchanges the erasure events (of every chain) cover, by their scopes."""

    ids: frozenset[str] = frozenset()
    key_ids: frozenset[str] = frozenset()
    #: (context, received before): exchanges of that context received earlier
    contexts: tuple[tuple[str, datetime], ...] = ()
    #: erasure events whose scope could not be read (said, never trusted)
    unreadable: tuple[str, ...] = field(default=())

    def cover(self, row: Mapping[str, Any]) -> bool:
        if row.get("id") in self.ids:
            return True
        if row.get("key_id") is not None and row.get("key_id") in self.key_ids:
            return True
        context, received = row.get("context"), row.get("received_at")
        if context is None or not isinstance(received, datetime):
            return False
        return any(context == c and received < before for c, before in self.contexts)


def erasures_of(bodies: Sequence[Mapping[str, Any]]) -> Erasures:
    """The scopes of erasure events' bodies (``event_body``), as ``Erasures``."""
    ids: set[str] = set()
    key_ids: set[str] = set()
    contexts: list[tuple[str, datetime]] = []
    unreadable: list[str] = []
    for body in bodies:
        detail = body.get("detail")
        scope = detail.get("scope") if isinstance(detail, dict) else None
        try:
            _scope_into(scope, ids, key_ids, contexts)
        except (TypeError, ValueError, KeyError):
            unreadable.append(str(body.get("id")))
    return Erasures(frozenset(ids), frozenset(key_ids), tuple(contexts), tuple(unreadable))


def _scope_into(scope: Any, ids: set[str], key_ids: set[str],
                contexts: list[tuple[str, datetime]]) -> None:
    if not isinstance(scope, dict):
        raise TypeError("no scope")
    if "exchanges" in scope:
        ids.update(str(item) for item in scope["exchanges"])
    elif "key_id" in scope:
        key_ids.add(str(scope["key_id"]))
    elif "context" in scope:
        before = datetime.fromisoformat(str(scope["received_before"]))
        before = before.replace(tzinfo=UTC) if before.tzinfo is None else before
        contexts.append((str(scope["context"]), before))
    else:
        raise KeyError("scope")


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (1, 1.0 and true are three values here, as in the leaf)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _open(leaf: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(leaf)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _frame(chain: str, seq: int, prev: str, kind: str, found: dict[str, Any] | None,
           ref: str | None) -> tuple[Problem | None, int | None]:
    """The leaf's position, link, chain and kind: the first of them that is wrong."""
    if found is None:
        return Problem("edited", chain, seq, ref, "the leaf is not a JSON object"), None
    named = found.get("seq")
    named_seq = named if isinstance(named, int) and not isinstance(named, bool) else None
    if named_seq != seq:
        return Problem("reordered", chain, seq, ref,
                       f"the entry at seq {seq} says it is entry {named!r}"), named_seq
    if found.get("prev") != prev:
        return Problem("edited", chain, seq, ref,
                       "its prev is not the previous entry's hash (an entry before it was "
                       "rewritten, removed or put in)"), named_seq
    expected = {"v": LEAF_VERSION, "chain": chain, "kind": kind}
    wrong = [name for name, value in expected.items() if found.get(name) != value]
    if wrong:
        return Problem("edited", chain, seq, ref,
                       f"its leaf's {', '.join(wrong)} differ"), named_seq
    return None, named_seq


def diagnose_exchange(chain: str, erasures: Erasures, seq: int, prev: str,
                      row: Mapping[str, Any], leaf: bytes, body: dict[str, Any] | None
                      ) -> tuple[Problem | None, int | None]:
    """Why an exchange entry's leaf is not the one rebuilt from its row (``body``; None when
    the row is gone): the problem, if any, and the seq the leaf names."""
    ref = str(row["audit_ref"])
    found = _open(leaf)
    problem, named = _frame(chain, seq, prev, "exchange", found, ref)
    if problem is not None or found is None:
        return problem, named
    stored = found.get("body")
    if not isinstance(stored, dict) or stored.get("id") != ref:
        return Problem("edited", chain, seq, ref, "the leaf is not this exchange's"), named
    if row.get("id") is None:
        return Problem("deleted", chain, seq, ref, "the exchange's row is gone"), named
    if body is None:
        return Problem("edited", chain, seq, ref,
                       "the row holds a value no record could (not writable as canonical "
                       "JSON)"), named
    fields = sorted(
        name for name in set(stored) | set(body)
        if name != "commit" and not _same(stored.get(name), body.get(name))
    )
    if fields:
        return Problem("edited", chain, seq, ref,
                       f"the row's {', '.join(fields)} differ from the chained record"), named
    return _content(chain, erasures, seq, row, stored.get("commit"), body["commit"]), named


def _content(chain: str, erasures: Erasures, seq: int, row: Mapping[str, Any], stored: Any,
             now: Mapping[str, Any]) -> Problem | None:
    """A commitment that differs: excused by a covering erasure, or tampering."""
    stored = stored if isinstance(stored, dict) else {}
    ref = str(row["id"])
    for part, column in CONTENT.items():
        if stored.get(part) == now.get(part):
            continue
        value = row.get(column)
        covered = erasures.cover(row)
        if (value is None or part == "decision") and covered:
            continue
        if value is None:
            return Problem("content_erased_without_record", chain, seq, ref,
                           f"the {column} was removed and no erasure event covers it")
        return Problem("content_edited", chain, seq, ref,
                       f"the {column} is not the content the record committed to")
    return None


def diagnose_event(chain: str, seq: int, prev: str, row: Mapping[str, Any],
                   leaf: bytes) -> tuple[Problem | None, int | None]:
    """An event entry checked as far as the chain alone can: its frame, its type and id."""
    found = _open(leaf)
    problem, named = _frame(chain, seq, prev, "event", found, None)
    if problem is not None or found is None:
        return problem, named
    body = found.get("body")
    if not isinstance(body, dict):
        return Problem("edited", chain, seq, None, "the event's body is not an object"), named
    if body.get("type") != row["audit_kind"] or body.get("id") != row["audit_ref"]:
        return Problem("edited", chain, seq, None,
                       "the entry's kind or ref is not its event's type or id"), named
    return None, named
