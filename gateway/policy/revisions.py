"""Storing the text of every policy revision, so an old exchange shows the rules that judged it."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.clock import now
from gateway.db.models import Exchange, GuidelineRevision, PolicyRevision
from gateway.db.session import Sessions
from gateway.policy.compiled import CompiledPolicy

log = logging.getLogger("gateway.policy")


class RevisionRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._unsaved: dict[str, CompiledPolicy] = {}

    async def save(self, policy: CompiledPolicy) -> None:
        """Store a revision's text once; kept for a retry when the database is unavailable."""
        self._unsaved[policy.revision] = policy
        await self.flush()

    async def flush(self) -> None:
        for revision, policy in list(self._unsaved.items()):
            try:
                await self._insert(policy)
            except Exception as exc:  # the database may be down: keep it for the next try
                log.warning("could not store policy revision %s yet: %s", revision[:12], exc)
                return
            del self._unsaved[revision]

    async def _insert(self, policy: CompiledPolicy) -> None:
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
