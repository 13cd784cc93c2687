"""Queues and claims: who works on which item, for how long.

A claim is a lease: the item is the claimer's until the lease expires, then it returns to the
queue by itself. On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED``, so
concurrent claimers (many reviewers, several gateway replicas) each get a different item; on
every database the claim is a conditional update that only one claimer can win, retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update

from gateway.db.models import Judgment, ReviewItem
from gateway.db.session import Sessions
from gateway.errors import NotFound, PermissionDenied
from gateway.records.log import now
from gateway.review.reviewers import ReviewerIdentity

LEASE = timedelta(minutes=15)
_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class QueueStatus:
    context: str
    queue: str
    waiting: int
    claimed: int
    escalated: int
    done_today: int


def _free(at: datetime, reviewer_id: str) -> ColumnElement[bool]:
    return or_(
        ReviewItem.claimed_by.is_(None),
        ReviewItem.lease_expires_at < at,
        ReviewItem.claimed_by == reviewer_id,
    )


class QueueService:
    def __init__(self, sessions: Sessions, lease: timedelta = LEASE) -> None:
        self._sessions = sessions
        self._lease = lease

    def _candidates(
        self, who: ReviewerIdentity, context: str, queue: str, at: datetime
    ) -> Select[ReviewItem]:
        mine = select(Judgment.item_id).where(Judgment.reviewer_id == who.id)
        return (
            select(ReviewItem)
            .where(
                ReviewItem.context == context,
                ReviewItem.queue == queue,
                ReviewItem.state == "open",
                _free(at, who.id),
                ReviewItem.id.not_in(mine),
            )
            .order_by((ReviewItem.claimed_by == who.id).desc(), ReviewItem.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )

    async def claim(self, who: ReviewerIdentity, context: str, queue: str) -> ReviewItem | None:
        """The reviewer's next item in a queue (their own unexpired claim first), leased."""
        if not who.may_see(context, queue):
            raise NotFound(f"No queue '{context}/{queue}' for you.", code="queue_not_found")
        for _ in range(_ATTEMPTS):
            async with self._sessions.begin() as session:
                at = now()
                item = await session.scalar(self._candidates(who, context, queue, at))
                if item is None:
                    return None
                won = await session.execute(
                    update(ReviewItem)
                    .where(ReviewItem.id == item.id, _free(at, who.id))
                    .values(claimed_by=who.id, lease_expires_at=at + self._lease)
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount == 1:  # type: ignore[attr-defined]
                    await session.refresh(item)
                    return item
        return None

    async def item_for(self, who: ReviewerIdentity, item_id: str) -> ReviewItem:
        """An item the reviewer may see; anything else is 'not found', never 'forbidden'."""
        async with self._sessions() as session:
            item = await session.get(ReviewItem, item_id)
        if item is None or not who.may_see(item.context, item.queue):
            raise NotFound(f"No review item '{item_id}'.", code="item_not_found")
        return item

    async def release(self, who: ReviewerIdentity, item_id: str, *, escalate: bool) -> ReviewItem:
        item = await self.item_for(who, item_id)
        values: dict[str, object] = {"claimed_by": None, "lease_expires_at": None}
        if escalate:
            values["state"] = "escalated"
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(ReviewItem)
                .where(ReviewItem.id == item.id, ReviewItem.claimed_by == who.id)
                .values(**values)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise PermissionDenied("You do not hold this item's claim.", code="not_claimed")
        return await self.item_for(who, item_id)

    async def status(self, who: ReviewerIdentity) -> list[QueueStatus]:
        at = now()
        midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
        claimed = and_(
            ReviewItem.state == "open",
            ReviewItem.claimed_by.is_not(None),
            ReviewItem.lease_expires_at >= at,
        )
        query = (
            select(
                ReviewItem.context,
                ReviewItem.queue,
                func.count().filter(ReviewItem.state == "open"),
                func.count().filter(claimed),
                func.count().filter(ReviewItem.state == "escalated"),
                func.count().filter(
                    and_(ReviewItem.state == "done", ReviewItem.done_at >= midnight)
                ),
            )
            .group_by(ReviewItem.context, ReviewItem.queue)
            .order_by(ReviewItem.context, ReviewItem.queue)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            QueueStatus(c, q, open_ - held, held, esc, done)
            for c, q, open_, held, esc, done in rows
            if who.may_see(c, q)
        ]
