"""Queues and claims: who works on which item, for how long.

A claim is a lease: the item is the claimer's until the lease expires, then it returns to the
queue by itself. On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED``, so
concurrent claimers (many reviewers, several gateway replicas) each get a different item; on
every database the claim is a conditional update that only one claimer can win, retried.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import now
from gateway.db.models import Judgment, ReviewItem, ReviewSkip
from gateway.db.session import Sessions
from gateway.errors import NotFound, PermissionDenied
from gateway.review.reviewers import ReviewerIdentity
from gateway.review.states import WITH_A_LEAD, ItemState

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
    oldest_open: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["oldest_open"] = self.oldest_open.isoformat() if self.oldest_open else None
        return values


@dataclass(frozen=True, slots=True)
class RecentJudgment:
    item_id: str
    context: str
    queue: str
    verdict: str
    purpose: str
    correction: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """A reviewer's own work: judgments today and in all, and their median time."""

    today: int
    total: int
    median_seconds: float | None


def _free(at: datetime, reviewer_id: str) -> ColumnElement[bool]:
    return or_(
        ReviewItem.claimed_by.is_(None),
        ReviewItem.lease_expires_at < at,
        ReviewItem.claimed_by == reviewer_id,
    )


def _count_conditions(at: datetime) -> dict[str, ColumnElement[bool]]:
    """What each count of the queue listing counts, at one instant."""
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "open": ReviewItem.state == ItemState.OPEN,
        "claimed": and_(
            ReviewItem.claimed_by.is_not(None),
            ReviewItem.state == ItemState.OPEN,
            ReviewItem.lease_expires_at >= at,
        ),
        "escalated": ReviewItem.state.in_(WITH_A_LEAD),
        "done": and_(ReviewItem.done_at >= midnight, ReviewItem.state == ItemState.DONE),
    }


class QueueService:
    def __init__(self, sessions: Sessions, lease: timedelta = LEASE) -> None:
        self._sessions = sessions
        self._lease = lease

    def _mine(
        self, who: ReviewerIdentity, context: str, queue: str, at: datetime
    ) -> Select[ReviewItem]:
        """The reviewer's own unexpired claim in the queue, to resume it."""
        return (
            select(ReviewItem)
            .where(
                ReviewItem.claimed_by == who.id,
                ReviewItem.context == context,
                ReviewItem.queue == queue,
                ReviewItem.state == ItemState.OPEN,
                ReviewItem.lease_expires_at >= at,
            )
            .limit(1)
        )

    def _candidates(
        self, who: ReviewerIdentity, context: str, queue: str, at: datetime, *, fresh: bool
    ) -> Select[ReviewItem]:
        # Oldest first, in the (context, queue, state, created_at) index's order, so the scan
        # stops at the first free item the reviewer has not judged yet. ``fresh`` leaves out the
        # items the reviewer skipped: those come back to them only when nothing else waits.
        judged = exists().where(Judgment.item_id == ReviewItem.id, Judgment.reviewer_id == who.id)
        conditions = [
            ReviewItem.context == context,
            ReviewItem.queue == queue,
            ReviewItem.state == ItemState.OPEN,
            _free(at, who.id),
            ~judged,
        ]
        if fresh:
            skipped = exists().where(
                ReviewSkip.item_id == ReviewItem.id, ReviewSkip.reviewer_id == who.id
            )
            conditions.append(~skipped)
        return (
            select(ReviewItem)
            .where(*conditions)
            .order_by(ReviewItem.created_at)
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
                mine = await session.scalar(self._mine(who, context, queue, at))
                if mine is not None:
                    return mine
                item = await session.scalar(
                    self._candidates(who, context, queue, at, fresh=True)
                ) or await session.scalar(self._candidates(who, context, queue, at, fresh=False))
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

    async def release(
        self, who: ReviewerIdentity, item_id: str, *, escalate: bool, note: str | None = None
    ) -> ReviewItem:
        """Give the claim back (a skip), or send the item to a lead, with why if given."""
        item = await self.item_for(who, item_id)
        values: dict[str, object] = {"claimed_by": None, "lease_expires_at": None}
        if escalate:
            values["state"] = ItemState.ESCALATED
            values["escalation_note"] = note
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(ReviewItem)
                .where(ReviewItem.id == item.id, ReviewItem.claimed_by == who.id)
                .values(**values)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise PermissionDenied("You do not hold this item's claim.", code="not_claimed")
            if not escalate and await session.get(ReviewSkip, (who.id, item.id)) is None:
                session.add(ReviewSkip(reviewer_id=who.id, item_id=item.id, skipped_at=now()))
        return await self.item_for(who, item_id)

    async def status(self, who: ReviewerIdentity) -> list[QueueStatus]:
        """Counts per queue, as small grouped counts that each ride an index (one grouped
        count over every item with FILTERs scans the whole table)."""
        conditions = _count_conditions(now())
        counts: dict[tuple[str, str], dict[str, int]] = {}
        async with self._sessions() as session:
            for name, condition in conditions.items():
                query = (
                    select(ReviewItem.context, ReviewItem.queue, func.count())
                    .where(condition)
                    .group_by(ReviewItem.context, ReviewItem.queue)
                )
                for context, queue, count in (await session.execute(query)).all():
                    if who.may_see(context, queue):
                        counts.setdefault((context, queue), {})[name] = count
            oldest = {
                key: await self._oldest_open(session, *key)
                for key, n in counts.items()
                if n.get("open")
            }
        return [
            QueueStatus(
                c,
                q,
                n.get("open", 0) - n.get("claimed", 0),
                n.get("claimed", 0),
                n.get("escalated", 0),
                n.get("done", 0),
                oldest.get((c, q)),
            )
            for (c, q), n in sorted(counts.items())
        ]

    @staticmethod
    async def _oldest_open(session: AsyncSession, context: str, queue: str) -> datetime | None:
        """One queue's oldest open item: the first entry of the (context, queue, state,
        created_at) index, where one grouped minimum over every queue would read them all."""
        return await session.scalar(
            select(func.min(ReviewItem.created_at)).where(
                ReviewItem.context == context,
                ReviewItem.queue == queue,
                ReviewItem.state == ItemState.OPEN,
            )
        )

    async def recent(self, reviewer_id: str, limit: int = 10) -> list[RecentJudgment]:
        """The reviewer's latest judgments, newest first, to find one again and correct it."""
        query = (
            select(Judgment, ReviewItem.context, ReviewItem.queue)
            .join(ReviewItem, ReviewItem.id == Judgment.item_id)
            .where(Judgment.reviewer_id == reviewer_id)
            .order_by(Judgment.created_at.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            RecentJudgment(
                j.item_id, c, q, j.verdict, j.purpose, j.supersedes is not None, j.created_at
            )
            for j, c, q in rows
        ]

    async def progress(self, reviewer_id: str, recent: int = 200) -> Progress:
        """Counts by SQL; the median over the reviewer's most recent judgments."""
        midnight = now().replace(hour=0, minute=0, second=0, microsecond=0)
        mine = Judgment.reviewer_id == reviewer_id
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).where(mine))
            today = await session.scalar(
                select(func.count()).where(mine, Judgment.created_at >= midnight)
            )
            spent = await session.scalars(
                select(Judgment.seconds_spent)
                .where(mine, Judgment.seconds_spent.is_not(None))
                .order_by(Judgment.created_at.desc())
                .limit(recent)
            )
            seconds = [s for s in spent if s is not None]  # none are; the type says maybe
        median = statistics.median(seconds) if seconds else None
        return Progress(today or 0, total or 0, median)
