"""Reviewer accounts: roles, queues, and their own tokens (stored only as digests)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.clock import now
from gateway.db.models import Reviewer, ReviewerQueue, ReviewItem, WebSession
from gateway.db.session import Sessions
from gateway.errors import AuthenticationFailed, NotFound, PermissionDenied
from gateway.review.states import RANKS, ItemState, ReviewerKind, ReviewerRole

Role = Literal["reviewer", "lead", "admin"]
TOKEN_PREFIX = "rv-"  # noqa: S105 (a prefix, not a secret)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ReviewerIdentity:
    id: str
    pseudonym: str
    role: str
    kind: str
    queues: frozenset[tuple[str, str]]

    def may_see(self, context: str, queue: str) -> bool:
        return self.role == ReviewerRole.ADMIN or (context, queue) in self.queues

    @property
    def leads(self) -> bool:
        return self.role in (ReviewerRole.LEAD, ReviewerRole.ADMIN)

    def require(self, role: Role | ReviewerRole) -> None:
        if RANKS[self.role] < RANKS[role]:
            raise PermissionDenied(f"This needs the {role} role.", code="role_required")


class ReviewerService:
    """Reviewer accounts. Each change appends its event to ``audit`` in the same transaction
    (``actor``: who made it; never a token or a name on the chain)."""

    def __init__(self, sessions: Sessions, audit: AuditChain | None = None) -> None:
        self._sessions = sessions
        self._audit = audit

    async def create(
        self,
        name: str,
        role: Role,
        *,
        kind: str = ReviewerKind.HUMAN,
        organisation: str | None = None,
        locale: str | None = None,
        languages: list[str] | None = None,
        actor: str = events.GATEWAY,
    ) -> tuple[Reviewer, str]:
        """A new reviewer and their token (shown once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        reviewer = Reviewer(
            id="rvr_" + secrets.token_hex(8),
            name=name,
            pseudonym="annotator-" + secrets.token_hex(4),
            token_digest=token_digest(token),
            role=role,
            kind=kind,
            organisation=organisation,
            locale=locale,
            languages=languages or [],
            created_at=now(),
        )
        async with self._sessions.begin() as session:
            session.add(reviewer)
            await events.append(self._audit, session, events.reviewer_added(actor, reviewer))
        return reviewer, token

    async def assign(
        self, reviewer_id: str, context: str, queue: str, *, actor: str = events.GATEWAY
    ) -> None:
        async with self._sessions.begin() as session:
            if await session.get(Reviewer, reviewer_id) is None:
                raise LookupError(f"no reviewer {reviewer_id!r}")
            if await session.get(ReviewerQueue, (reviewer_id, context, queue)) is None:
                session.add(ReviewerQueue(reviewer_id=reviewer_id, context=context, queue=queue))
                event = events.reviewer_queues(actor, reviewer_id, context, queue, True)
                await events.append(self._audit, session, event)

    async def unassign(
        self, reviewer_id: str, context: str, queue: str, *, actor: str = events.GATEWAY
    ) -> None:
        """Take a queue away; the reviewer's live claims in it go back to the queue."""
        async with self._sessions.begin() as session:
            await _reviewer(session, reviewer_id)
            removed = await session.execute(
                delete(ReviewerQueue).where(
                    ReviewerQueue.reviewer_id == reviewer_id,
                    ReviewerQueue.context == context,
                    ReviewerQueue.queue == queue,
                )
            )
            if removed.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFound(
                    f"Reviewer '{reviewer_id}' does not work {context}/{queue}.",
                    code="queue_not_found",
                )
            await _release(
                session, reviewer_id, ReviewItem.context == context, ReviewItem.queue == queue
            )
            event = events.reviewer_queues(actor, reviewer_id, context, queue, False)
            await events.append(self._audit, session, event)

    async def disable(self, reviewer_id: str, *, actor: str = events.GATEWAY) -> Reviewer:
        """No sign-in, API or claim from now on; sessions end, claims go back to their queues.
        Past judgments stay: they are the record, and exports keep counting them."""
        async with self._sessions.begin() as session:
            reviewer = await _reviewer(session, reviewer_id)
            already = reviewer.disabled_at is not None
            reviewer.disabled_at = reviewer.disabled_at or now()
            ended = await _end_sessions(session, reviewer_id)
            await _release(session, reviewer_id)
            if not already:
                event = events.reviewer_disabled(actor, reviewer_id, ended)
                await events.append(self._audit, session, event)
        return reviewer

    async def enable(self, reviewer_id: str, *, actor: str = events.GATEWAY) -> Reviewer:
        async with self._sessions.begin() as session:
            reviewer = await _reviewer(session, reviewer_id)
            if reviewer.disabled_at is not None:
                reviewer.disabled_at = None
                await events.append(
                    self._audit, session, events.reviewer_enabled(actor, reviewer_id)
                )
        return reviewer

    async def rotate_token(self, reviewer_id: str, *, actor: str = events.GATEWAY) -> str:
        """A new token (shown once); the old one, and every session it opened, ends at once."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._sessions.begin() as session:
            reviewer = await _reviewer(session, reviewer_id)
            reviewer.token_digest = token_digest(token)
            await _end_sessions(session, reviewer_id)
            await events.append(self._audit, session, events.reviewer_token(actor, reviewer_id))
        return token

    async def list(self) -> list[tuple[Reviewer, list[tuple[str, str]]]]:
        async with self._sessions() as session:
            reviewers = list(await session.scalars(select(Reviewer).order_by(Reviewer.created_at)))
            queues = list(await session.scalars(select(ReviewerQueue)))
        return [
            (r, [(q.context, q.queue) for q in queues if q.reviewer_id == r.id]) for r in reviewers
        ]

    async def authenticate(self, authorization: str | None) -> ReviewerIdentity:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            raise AuthenticationFailed(
                "Send your reviewer token as 'Authorization: Bearer rv-…'.",
                code="invalid_reviewer_token",
            )
        return await self.by_token(token.strip())

    async def by_token(self, token: str) -> ReviewerIdentity:
        """The reviewer a token belongs to, as the API and the web page's sign-in see them."""
        if not token.startswith(TOKEN_PREFIX):
            raise AuthenticationFailed(
                "A reviewer token starts with 'rv-'.", code="invalid_reviewer_token"
            )
        async with self._sessions() as session:
            reviewer = await session.scalar(
                select(Reviewer).where(Reviewer.token_digest == token_digest(token))
            )
            return await _identity(session, reviewer)

    async def by_id(self, reviewer_id: str) -> ReviewerIdentity:
        async with self._sessions() as session:
            return await _identity(session, await session.get(Reviewer, reviewer_id))


async def _reviewer(session: AsyncSession, reviewer_id: str) -> Reviewer:
    reviewer = await session.get(Reviewer, reviewer_id)
    if reviewer is None:
        raise NotFound(f"No reviewer '{reviewer_id}'.", code="reviewer_not_found")
    return reviewer


async def _end_sessions(session: AsyncSession, reviewer_id: str) -> int:
    """End the reviewer's open web sessions; how many there were."""
    ended = await session.execute(
        update(WebSession)
        .where(WebSession.reviewer_id == reviewer_id, WebSession.ended_at.is_(None))
        .values(ended_at=now())
    )
    return int(ended.rowcount)  # type: ignore[attr-defined]


async def _release(session: AsyncSession, reviewer_id: str, *where: ColumnElement[bool]) -> None:
    """The reviewer's open claims (in the queues ``where`` names) back to their queues."""
    await session.execute(
        update(ReviewItem)
        .where(ReviewItem.claimed_by == reviewer_id, ReviewItem.state == ItemState.OPEN, *where)
        .values(claimed_by=None, lease_expires_at=None)
    )


async def _identity(session: AsyncSession, reviewer: Reviewer | None) -> ReviewerIdentity:
    """Who the reviewer is now: a disabled reviewer, or a removed queue, takes effect at once."""
    if reviewer is None or reviewer.disabled_at is not None:
        raise AuthenticationFailed(
            "Unknown or disabled reviewer token.", code="invalid_reviewer_token"
        )
    queues = await session.scalars(
        select(ReviewerQueue).where(ReviewerQueue.reviewer_id == reviewer.id)
    )
    return ReviewerIdentity(
        reviewer.id,
        reviewer.pseudonym,
        reviewer.role,
        reviewer.kind,
        frozenset((q.context, q.queue) for q in queues),
    )
