"""The chain's leaves: one canonical JSON text per entry (an exchange record or an event),
with its chain, sequence number and the previous entry's hash in it, hashed as RFC 6962
hashes a leaf: SHA-256(0x00 || leaf).

An exchange's leaf is computed from its row as the database gives it back, on either dialect,
so a verifier recomputes it from the tables alone: every column but the content (request and
response bodies, the decision with its notes) and what changes after the fact (a deletion or
erasure time) is in it as it is stored; the content is in it as HMAC commitments
(``AuditKeys.commit``), which an erasure leaves standing. The field list is frozen with the
leaf's version: a column added later joins a new version, never an old leaf.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.audit.canonical import canonical, json_value
from gateway.audit.keys import AuditKeys
from gateway.clock import now

LEAF_VERSION = 1
ZERO_HASH = "0" * 64

#: every exchanges column but the content and the mutable ones (``NOT_CHAINED``)
EXCHANGE_FIELDS: tuple[str, ...] = (
    "id",
    "endpoint",
    "received_at",
    "upstream_started_at",
    "first_byte_at",
    "ended_at",
    "key_id",
    "context",
    "requested_model",
    "backend",
    "upstream_model",
    "response_model",
    "stream",
    "status",
    "http_status",
    "error_type",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "gateway_version",
    "decision_id",
    "policy_revision",
    "attempts",
    "cost",
    "currency",
    "response_id",
    "trace_id",
)
#: content (committed to, not copied) and what changes after the record is written
NOT_CHAINED: tuple[str, ...] = (
    "request_body",
    "response_body",
    "decision",
    "deleted_at",
    "erased_at",
)
#: a finding as its leaf lists it
FINDING_FIELDS: tuple[str, ...] = ("rule", "detector", "stage", "action", "enforced")
_FLOATS = frozenset({"cost"})
_JSON = frozenset({"attempts"})
_CONVERTED = _FLOATS | _JSON
#: the types of a value the leaf has as it is, in any other column
_AS_IS = frozenset({str, int, bool})


def iso(value: datetime) -> str:
    """A time as the leaves write it: UTC, ISO 8601, with microseconds."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if name in _FLOATS:
        return repr(float(value))
    if name in _JSON:
        return json_value(value)
    return value


def exchange_body(
    row: Mapping[str, Any], findings: Sequence[Mapping[str, Any]], keys: AuditKeys
) -> dict[str, Any]:
    """An exchange's leaf body, from its row and its findings (as written or as read back)."""
    get = row.get
    body = {}
    for name in EXCHANGE_FIELDS:  # a text, an int or None is as it is, in all but two
        value = get(name)
        if value is not None and (name in _CONVERTED or type(value) not in _AS_IS):
            value = _value(name, value)
        body[name] = value
    listed = [[f.get(name) for name in FINDING_FIELDS] for f in findings]
    body["findings"] = sorted(listed, key=lambda item: [str(part) for part in item])
    body["commit"] = {
        "request": keys.commit(row.get("request_body")),
        "response": keys.commit(row.get("response_body")),
        "decision": keys.commit(row.get("decision")),
    }
    return body


def _event_id() -> str:
    return "evt_" + secrets.token_hex(12)


@dataclass(frozen=True)
class AuditEvent:
    """Something that changed what the gateway does or holds, for the chain: a policy
    revision, a key created, revoked or limited, a reviewer added, disabled or given queues,
    an export, an erasure, a response deleted, an audit key rotated."""

    type: str
    #: who: "cli:<os user>", "admin-api", "reviewer:<id>", "gateway"
    actor: str
    #: what it is about: a key id, a context, an exchange id...
    subject: str | None
    reason: str | None
    detail: dict[str, Any]
    id: str = field(default_factory=_event_id)
    at: datetime = field(default_factory=now)


def event_body(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "actor": event.actor,
        "subject": event.subject,
        "reason": event.reason,
        "at": iso(event.at),
        "detail": json_value(event.detail),
    }


def leaf_text(
    chain_id: str,
    seq: int,
    prev: str,
    kind: Literal["exchange", "event"],
    body: Mapping[str, Any],
) -> bytes:
    return canonical(
        {"v": LEAF_VERSION, "chain": chain_id, "seq": seq, "prev": prev, "kind": kind, "body": body}
    )


def entry_hash(leaf: bytes) -> str:
    """The RFC 6962 leaf hash, hex."""
    return hashlib.sha256(b"\x00" + leaf).hexdigest()
