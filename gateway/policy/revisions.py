"""Storing the text of every policy revision, so an old exchange shows the rules that judged it."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.audit.leaf import AuditEvent
from gateway.clock import now
from gateway.db.models import Exchange, GuidelineRevision, PolicyRevision
from gateway.db.session import Sessions
from gateway.policy.compiled import CompiledPolicy

log = logging.getLogger("gateway.policy")


class RevisionRepository:
    """The revisions' texts; with ``audit``, each revision taking effect in this process is
    an event on the chain (``policy.revision``), stored with its text in one transaction."""

    def __init__(self, sessions: Sessions, audit: AuditChain | None = None) -> None:
        self._sessions = sessions
        self._audit = audit
        self._unsaved: dict[str, tuple[CompiledPolicy, AuditEvent | None]] = {}
        #: the revision each context took effect at here, last (the same one again is no event)
        self._effective: dict[str, str] = {}

    async def save(self, policy: CompiledPolicy, *, refused: str | None = None) -> None:
        """Store a revision's text once, and say it took effect: from its file, or with
        ``refused`` (why the file is refused) from the database as the last good revision.
        Kept for a retry when the database is unavailable."""
        event = None
        if self._effective.get(policy.context) != policy.revision:
            source: events.Source = "file" if refused is None else "database"
            event = events.policy_revision(
                policy.context, policy.revision, str(policy.path), source, refused
            )
            self._effective[policy.context] = policy.revision
        waiting = self._unsaved.get(policy.revision)
        self._unsaved[policy.revision] = (policy, event or (waiting[1] if waiting else None))
        await self.flush()

    async def refused(self, serving: CompiledPolicy, error: str) -> None:
        """An edit of ``serving``'s file was refused: the revision keeps serving (an event,
        kept for a retry as ``save`` keeps its own)."""
        event = events.policy_revision(
            serving.context, serving.revision, str(serving.path), "kept", error
        )
        self._unsaved[event.id] = (serving, event)
        await self.flush()

    async def flush(self) -> None:
        for revision, (policy, event) in list(self._unsaved.items()):
            try:
                await self._insert(policy, event)
            except Exception as exc:  # the database may be down: keep it for the next try
                log.warning("could not store policy revision %s yet: %s", revision[:12], exc)
                return
            del self._unsaved[revision]

    async def _insert(self, policy: CompiledPolicy, event: AuditEvent | None) -> None:
        values = {
            "revision": policy.revision,
            "context": policy.context,
            "path": str(policy.path),
            "text": policy.text,
            "first_seen_at": now(),
        }
        guidelines = [
            {
                "revision": g.revision,
                "context": policy.context,
                "queue": g.queue,
                "path": str(g.path),
                "text": g.text,
                "first_seen_at": now(),
            }
            for g in policy.guidelines.values()
        ]
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            await session.execute(insert(PolicyRevision).values(**values).on_conflict_do_nothing())
            for guideline in guidelines:
                await session.execute(
                    insert(GuidelineRevision).values(**guideline).on_conflict_do_nothing()
                )
            if event is not None:
                await events.append(self._audit, session, event)

    async def get(self, revision: str) -> PolicyRevision | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(PolicyRevision).where(PolicyRevision.revision == revision)
            )

    async def last_good(self, context: str) -> PolicyRevision | None:
        """The revision of ``context`` that served last, as far as the database can tell.

        That is the newest revision loaded, unless an exchange was decided since by another
        stored one (a file reverted to an older revision stores nothing new, but its traffic
        says it served)."""
        async with self._sessions() as session:
            newest = await session.scalar(
                select(PolicyRevision)
                .where(PolicyRevision.context == context)
                .order_by(PolicyRevision.first_seen_at.desc())
                .limit(1)
            )
            if newest is None:
                return None
            latest = (
                await session.execute(
                    select(Exchange.policy_revision, Exchange.received_at)
                    .where(Exchange.context == context, Exchange.policy_revision.is_not(None))
                    .order_by(Exchange.received_at.desc())
                    .limit(1)
                )
            ).first()
            if latest is None or latest.received_at <= newest.first_seen_at:
                return newest
            used = await session.get(PolicyRevision, latest.policy_revision)
            return used or newest
