"""What differs in an entry whose leaf does not match: the verifier's slow path.

An entry whose stored leaf is not the leaf rebuilt from the tables is opened up here and
compared part by part: its position (a leaf naming another sequence number is out of place:
reordered, or its neighbours removed or inserted), its link to the previous entry, its chain
and kind, each field of the exchange row, and the commitments to its content. A commitment
that no longer matches is excused only by an erasure (docs/audit.md "Retention and
erasure") whose event names the exchange: a request or response whose body is gone, or a
decision whose commitment now is the one the event recorded as the erasure left it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    """The exchanges erasure events (of every chain, each with a mac that verifies) erased,
    and per exchange the commitments to its decision as each erasure left it."""

    decisions: Mapping[str, frozenset[str | None]] = field(default_factory=dict)

    def cover(self, exchange_id: str) -> bool:
        return exchange_id in self.decisions

    def left(self, exchange_id: str, decision: Any) -> bool:
        """The decision (its commitment now) is the one an erasure of it left."""
        return decision in self.decisions.get(exchange_id, frozenset())


def erasures_of(details: Sequence[Mapping[str, Any]]) -> Erasures:
    """The erased exchanges of erasure events' details (their macs checked by the caller):
    ``exchanges`` maps each id to the commitment to its decision as the erasure left it."""
    decisions: dict[str, set[str | None]] = {}
    for detail in details:
        for exchange_id, decision in dict(detail["exchanges"]).items():
            decisions.setdefault(str(exchange_id), set()).add(
                decision if isinstance(decision, str) else None)
    return Erasures({name: frozenset(found) for name, found in decisions.items()})


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
        if part == "decision":
            if erasures.left(ref, now.get(part)):
                continue
        elif value is None and erasures.cover(ref):
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
