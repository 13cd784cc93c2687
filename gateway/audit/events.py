"""The events on the chain: what changed what the gateway does, who did it, and why.

Each constructor builds one ``AuditEvent`` (``gateway.audit.leaf``) with a fixed detail
shape (docs/audit.md "Events"). An event never carries a secret (no key, key digest or
reviewer token), no prompt or answer text, and no person's name: the chain is kept for
years and cannot be edited, so what it holds must be fit to keep (reviewers appear by id
and pseudonym, keys by id).

Who acted (``actor``): ``cli:<os user>`` for a command, ``admin-api`` for the admin API,
``reviewer:<id>`` for the review API and the reviewers' pages, ``key:<id>`` for a caller's
own request (a Responses DELETE), ``gateway`` for the gateway itself (a policy file taking
effect, the periodic retention pass).

``append`` puts an event on a chain inside the caller's transaction, so the change and its
event are committed together or not at all.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import AuditChain
from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import AuditEvent
from gateway.audit.leaf import iso as leaf_iso
from gateway.db.models import ApiKey, Reviewer

GATEWAY = "gateway"
ADMIN_API = "admin-api"

#: every event type this module makes, in docs/audit.md's order
POLICY_REVISION = "policy.revision"
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
KEY_LIMITS = "key.limits"
REVIEWER_ADDED = "reviewer.added"
REVIEWER_DISABLED = "reviewer.disabled"
REVIEWER_ENABLED = "reviewer.enabled"
REVIEWER_TOKEN = "reviewer.token"  # noqa: S105 (an event type, not a secret)
REVIEWER_QUEUES = "reviewer.queues"
EXPORT_CREATED = "export.created"
ERASURE = "erasure"
RESPONSE_DELETED = "response.deleted"

#: what an erasure removes: the bodies, the decision's text-bearing notes, and the review
#: items' alternative answers (asked with the erased prompt)
ERASED_FIELDS = (
    "request_body",
    "response_body",
    "decision.responses.admitted_input",
    "review_items.alternative",
)
#: where a policy revision that took effect came from: its file; (the file refused at a
#: start) its last good revision in the database; or (an edit of the file refused) the
#: revision that keeps serving
Source = Literal["file", "database", "kept"]


def cli_actor() -> str:
    """The actor of a command: the operating system's user who ran it."""
    return f"cli:{getpass.getuser()}"


def reviewer_actor(reviewer_id: str) -> str:
    return f"reviewer:{reviewer_id}"


def key_actor(key_id: str) -> str:
    return f"key:{key_id}"


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else leaf_iso(moment)


async def append(audit: AuditChain | None, session: AsyncSession, event: AuditEvent) -> None:
    """Append ``event`` in ``session``'s transaction; nothing when there is no chain (a
    service built outside a gateway or command, as tests' fixtures build them)."""
    if audit is not None:
        await audit.append_event(session, event)


def policy_revision(
    context: str, revision: str, path: str, source: Source, refused: str | None = None
) -> AuditEvent:
    """A revision of ``context`` took effect in this process. detail: ``context``,
    ``revision`` (the full content hash), ``path`` (its file), ``source``; ``refused``: why
    the file was refused when ``source`` is ``database`` or ``kept`` (the error names file
    and line)."""
    detail: dict[str, Any] = {
        "context": context,
        "revision": revision,
        "path": path,
        "source": source,
    }
    reason = None
    if source != "file":
        reason = f"the policy file is refused: its last good revision serves ({source})"
        detail["refused"] = refused
    return AuditEvent(POLICY_REVISION, GATEWAY, context, reason, detail)


def key_created(actor: str, key: ApiKey) -> AuditEvent:
    """detail: ``context``, ``name`` (the operator's label), ``expires_at``, ``limits``."""
    detail = {
        "context": key.context,
        "name": key.name,
        "expires_at": iso(key.expires_at),
        "limits": key.limits or None,
    }
    return AuditEvent(KEY_CREATED, actor, key.id, None, detail, at=key.created_at)


def key_revoked(actor: str, key_id: str, context: str, at: datetime) -> AuditEvent:
    """detail: ``context``."""
    return AuditEvent(KEY_REVOKED, actor, key_id, None, {"context": context}, at=at)


def key_limits(
    actor: str, key_id: str, context: str, before: object, after: object
) -> AuditEvent:
    """The key's own limits replaced. detail: ``context``, ``before``, ``after`` (each the
    stored limits, or null for none)."""
    detail = {"context": context, "before": before or None, "after": after or None}
    return AuditEvent(KEY_LIMITS, actor, key_id, None, detail)


def reviewer_added(actor: str, reviewer: Reviewer) -> AuditEvent:
    """detail: ``pseudonym``, ``role``, ``kind`` (never the name or organisation)."""
    detail = {"pseudonym": reviewer.pseudonym, "role": reviewer.role, "kind": reviewer.kind}
    return AuditEvent(REVIEWER_ADDED, actor, reviewer.id, None, detail, at=reviewer.created_at)


def reviewer_disabled(actor: str, reviewer_id: str, ended_sessions: int) -> AuditEvent:
    """detail: ``ended_sessions`` (the web sessions it ended at once)."""
    detail = {"ended_sessions": ended_sessions}
    return AuditEvent(REVIEWER_DISABLED, actor, reviewer_id, None, detail)


def reviewer_enabled(actor: str, reviewer_id: str) -> AuditEvent:
    """detail: empty: the reviewer works again with the token they had."""
    return AuditEvent(REVIEWER_ENABLED, actor, reviewer_id, None, {})


def reviewer_token(actor: str, reviewer_id: str) -> AuditEvent:
    """A new token: the old one and its sessions end. detail: empty (never the token)."""
    return AuditEvent(REVIEWER_TOKEN, actor, reviewer_id, None, {})


def reviewer_queues(
    actor: str, reviewer_id: str, context: str, queue: str, assigned: bool
) -> AuditEvent:
    """detail: ``context``, ``queue``, ``assigned`` (false: taken away)."""
    detail = {"context": context, "queue": queue, "assigned": assigned}
    return AuditEvent(REVIEWER_QUEUES, actor, reviewer_id, None, detail)


def export_created(
    actor: str, export_id: str, export_format: str, flt: Mapping[str, Any], rows: int, sha256: str
) -> AuditEvent:
    """detail: ``format``, ``filter`` (context, queue, since, until, include_partial),
    ``rows`` (records written), ``sha256`` (of data.jsonl, as the card says)."""
    detail = {"format": export_format, "filter": dict(flt), "rows": rows, "sha256": sha256}
    return AuditEvent(EXPORT_CREATED, actor, export_id, None, detail)


def erasure(
    actor: str,
    reason: str,
    scope: Mapping[str, Any],
    erased: Mapping[str, str | None],
    keys: AuditKeys,
    subject: str | None = None,
) -> AuditEvent:
    """Content erased. detail: ``scope`` (for people: what was asked, ``{"by": "exchange
    id"}``, ``{"key_id": id}``, ``{"context": c, "received_before": iso}`` or ``{"context":
    c, "decided_by": revisions}``), ``exchanges`` (each id erased and the commitment to its
    decision as the erasure left it: what the verifier excuses, and only that), ``fields``
    (what was removed), ``count``, and ``mac``: the HMAC of the rest under the chain's HMAC
    key, so an erasure event made without the key excuses nothing."""
    detail: dict[str, Any] = {
        "scope": dict(scope),
        "exchanges": dict(sorted(erased.items())),
        "fields": list(ERASED_FIELDS),
        "count": len(erased),
    }
    detail["mac"] = erasure_mac(keys, detail)
    return AuditEvent(ERASURE, actor, subject, reason, detail)


def erasure_mac(keys: AuditKeys, detail: Mapping[str, Any]) -> str:
    """An erasure event's ``mac``: the commitment to its detail without the mac."""
    return str(keys.commit({name: value for name, value in detail.items() if name != "mac"}))


def ids_scope() -> dict[str, Any]:
    return {"by": "exchange id"}


def key_scope(key_id: str) -> dict[str, Any]:
    return {"key_id": key_id}


def retention_scope(context: str, before: datetime) -> dict[str, Any]:
    return {"context": context, "received_before": iso(before)}


def policy_scope(context: str, revisions: Sequence[str] | None) -> dict[str, Any]:
    return {"context": context, "decided_by": None if revisions is None else sorted(revisions)}


def response_deleted(actor: str, response_id: str, exchange_id: str, context: str) -> AuditEvent:
    """A Responses DELETE: the response is no longer served (its record stays). detail:
    ``exchange`` (the record's id), ``context``."""
    detail = {"exchange": exchange_id, "context": context}
    return AuditEvent(RESPONSE_DELETED, actor, response_id, None, detail)
