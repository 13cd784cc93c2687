"""Erasing the content of exchange records: a person's request, retention, a policy that now
keeps less (docs/audit.md "Retention and erasure").

An erasure removes the request and answer bodies, the decision's text-bearing notes (a
Responses record's ``admitted_input``) and its review items' alternative answers (asked with
the same prompt), sets ``erased_at``, and appends one erasure event in
the same transaction, saying who, why, what was asked (its scope), each exchange it erased
with the commitment to its decision as left, and a mac under the chain's HMAC key.
Everything else stays: ids, times, status, usage, the decision with its offsets, and the
record's entry on the audit chain, whose commitments to the erased content the verifier
accepts for exactly the exchanges an erasure event with a good mac names.

Large erasures go in batches (``batch`` records a transaction, one event each), so a
retention pass over 100,000 records never holds one long transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.clock import now
from gateway.db.models import Exchange, ReviewItem
from gateway.db.session import Sessions
from gateway.records.responses import ENDPOINT, NOTES

log = logging.getLogger("gateway.records.erasure")

#: records erased in one transaction (and said by one event)
BATCH = 500
#: the decision's notes that carry text of the exchange (the input as the rules left it)
TEXT_NOTES = ("admitted_input",)

def has_body(column: Any) -> ColumnElement[bool]:
    """The body is there: neither SQL NULL nor JSON null (both mean none was kept)."""
    return func.coalesce(cast(column, Text), "null") != "null"


def erasable() -> ColumnElement[bool]:
    """A record whose content is still there to erase."""
    return Exchange.erased_at.is_(None) & (
        has_body(Exchange.request_body) | has_body(Exchange.response_body)
    )


@dataclass(frozen=True, slots=True)
class Who:
    """Who erases and why: the event's actor and reason."""

    actor: str
    reason: str


class Eraser:
    """Erase by exchange ids, by key, by retention, or what a context's policy no longer keeps.

    A person's request (ids, a key) waits for rows another transaction holds and erases every
    one that matches; the retention pass skips locked rows, says how many it left, and the
    next pass takes them."""

    def __init__(self, sessions: Sessions, audit: AuditChain | None, batch: int = BATCH) -> None:
        self._sessions = sessions
        self._audit = audit
        self._batch = batch

    async def exchanges(self, ids: Sequence[str], who: Who) -> int:
        """A person's request by exchange id."""
        wanted = sorted(set(ids))
        total = 0
        for start in range(0, len(wanted), self._batch):
            chunk = wanted[start : start + self._batch]
            job = _Job([Exchange.id.in_(chunk)], events.ids_scope(), who, None, wait=True)
            total += await self._until_done(job)
        return total

    async def key(self, key_id: str, who: Who) -> int:
        """Everything a key's callers sent and got back."""
        job = _Job([Exchange.key_id == key_id], events.key_scope(key_id), who, key_id, wait=True)
        return await self._until_done(job)

    async def received_before(self, context: str, before: datetime, who: Who) -> int:
        """A context's records received before ``before`` (its retention_days)."""
        where = [Exchange.context == context, Exchange.received_at < before]
        scope = events.retention_scope(context, before)
        return await self._until_done(_Job(where, scope, who, context, wait=False))

    async def decided_by(self, context: str, revisions: Sequence[str] | None, who: Who) -> int:
        """A context's records with content decided by one of ``revisions`` (None: any), as
        when its policy now keeps less."""
        where = [Exchange.context == context]
        if revisions is not None:
            where.append(Exchange.policy_revision.in_(list(revisions)))
        scope = events.policy_scope(context, revisions)
        return await self._until_done(_Job(where, scope, who, context, wait=False))

    async def count(self, where: Sequence[ColumnElement[bool]]) -> int:
        """How many records an erasure over ``where`` would touch now."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(func.count(Exchange.id)).where(erasable(), *where)
            )
        return found or 0

    async def _until_done(self, job: _Job) -> int:
        total = 0
        while True:
            async with self._sessions.begin() as session:
                done = await self._one_batch(session, job)
            total += done
            if done < self._batch:
                break
        if not job.wait and (left := await self.count(job.where)):
            log.warning("erasure of %s: %d records left for the next pass (locked by another "
                        "transaction, or written meanwhile)", job.scope, left)
        return total

    async def _one_batch(self, session: AsyncSession, job: _Job) -> int:
        rows = (
            await session.execute(
                select(Exchange.id, Exchange.endpoint)
                .where(erasable(), *job.where)
                .order_by(Exchange.received_at, Exchange.id)
                .limit(self._batch)
                .with_for_update(skip_locked=not job.wait)
            )
        ).all()
        if not rows:
            return 0
        ids = [row.id for row in rows]
        when = now()
        await session.execute(
            update(Exchange)
            .where(Exchange.id.in_(ids))
            .values(request_body=null(), response_body=null(), erased_at=when)
        )
        await _drop_text_notes(session, [row.id for row in rows if row.endpoint == ENDPOINT])
        # a review item's alternative answer was asked with the erased prompt: it goes too
        await session.execute(
            update(ReviewItem)
            .where(ReviewItem.exchange_id.in_(ids), has_body(ReviewItem.alternative))
            .values(alternative=null())
        )
        if self._audit is not None and self._audit.enabled:
            keys = self._audit.keys
            left = await session.execute(
                select(Exchange.id, Exchange.decision).where(Exchange.id.in_(ids))
            )
            erased = {row.id: keys.commit(row.decision) for row in left}
            event = events.erasure(job.who.actor, job.who.reason, job.scope, erased, keys,
                                   job.subject)
            await events.append(self._audit, session, event)
        return len(ids)


@dataclass(frozen=True, slots=True)
class _Job:
    """One erasure: which records, the scope said on its events, who, the events' subject,
    and whether it waits for locked rows (a person's request) or leaves them (retention)."""

    where: list[ColumnElement[bool]]
    scope: dict[str, Any]
    who: Who
    subject: str | None
    wait: bool


async def _drop_text_notes(session: AsyncSession, ids: Sequence[str]) -> None:
    """Take the text-bearing notes out of these records' decisions, where they have any."""
    if not ids:
        return
    found = await session.execute(
        select(Exchange.id, Exchange.decision).where(Exchange.id.in_(ids))
    )
    for exchange_id, decision in found.all():
        notes = (decision or {}).get(NOTES)
        if not isinstance(notes, dict) or not any(k in notes for k in TEXT_NOTES):
            continue
        kept = {k: v for k, v in notes.items() if k not in TEXT_NOTES}
        await session.execute(
            update(Exchange)
            .where(Exchange.id == exchange_id)
            .values(decision={**decision, NOTES: kept})
        )
