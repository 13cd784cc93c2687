"""Judgments: append-only, made under a named guideline revision, by a person or a model.

A reviewer judges the item they hold the claim on. The judgment records, per fired rule,
whether the rule was right; the overall verdict and severity; the preferred answer (the
reviewer's rewrite, the original, or the generated alternative); the rationale; the guideline
revision the reviewer was shown and their acknowledgement of it; and the time spent. A
correction is a new judgment that supersedes the old one. When a queue asks for several
reviewers and their verdicts differ, the item goes to a lead for adjudication.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import now
from gateway.db.models import Judgment, ReviewItem
from gateway.db.session import Sessions
from gateway.errors import InvalidRequest, NotFound, PermissionDenied
from gateway.review.queue import QueueService
from gateway.review.reviewers import ReviewerIdentity
from gateway.review.states import WITH_A_LEAD, ItemState, Purpose

Verdict = Literal["acceptable", "violation", "unsure"]
Severity = Literal["none", "low", "medium", "high", "critical"]


class JudgmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_verdicts: dict[str, Literal["true_positive", "false_positive"]] = {}
    verdict: Verdict
    severity: Severity | None = None
    preferred: Literal["rewrite", "original", "alternative"] | None = None
    rewrite: str | None = Field(None, min_length=1)
    rationale: str = Field(min_length=1)
    guideline_revision: str | None = None
    guideline_acknowledged: bool = False
    seconds_spent: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _rewrite_goes_with_rewrite(self) -> JudgmentIn:
        if (self.preferred == "rewrite") != (self.rewrite is not None):
            raise ValueError("a rewrite is given exactly when preferred is 'rewrite'")
        return self


class JudgingService:
    def __init__(self, sessions: Sessions, queues: QueueService) -> None:
        self._sessions = sessions
        self._queues = queues

    async def judge(
        self,
        who: ReviewerIdentity,
        item_id: str,
        data: JudgmentIn,
        *,
        supersedes: str | None = None,
    ) -> Judgment:
        item = await self._queues.item_for(who, item_id)
        purpose = self._purpose(who, item, correcting=supersedes is not None)
        if supersedes is not None:
            purpose = await self._purpose_of(supersedes)  # an adjudication stays one
        _check_against(item, data)
        judgment = Judgment(
            id="jdg_" + secrets.token_hex(10),
            item_id=item.id,
            reviewer_id=who.id,
            kind=who.kind,
            purpose=purpose,
            rule_verdicts=data.rule_verdicts,
            verdict=data.verdict,
            severity=data.severity,
            preferred_source=data.preferred,
            preferred_text=_preferred_text(item, data),
            rationale=data.rationale,
            guideline_revision=data.guideline_revision,
            guideline_acknowledged=data.guideline_acknowledged,
            seconds_spent=data.seconds_spent,
            supersedes=supersedes,
            created_at=now(),
        )
        async with self._sessions.begin() as session:
            session.add(judgment)
            if supersedes is None:
                await session.flush()
                await self._advance(session, item, who, purpose)
        return judgment

    async def correct(self, who: ReviewerIdentity, judgment_id: str, data: JudgmentIn) -> Judgment:
        async with self._sessions() as session:
            old = await session.get(Judgment, judgment_id)
        if old is None or old.reviewer_id != who.id:
            raise NotFound(f"No judgment '{judgment_id}' of yours.", code="judgment_not_found")
        return await self.judge(who, old.item_id, data, supersedes=old.id)

    def _purpose(self, who: ReviewerIdentity, item: ReviewItem, *, correcting: bool) -> str:
        if correcting:
            return Purpose.REVIEW
        if item.state in WITH_A_LEAD:
            if not who.leads:
                raise PermissionDenied("Only a lead adjudicates this item.", code="role_required")
            return Purpose.ADJUDICATION
        if (
            item.state != ItemState.OPEN
            or item.claimed_by != who.id
            or (item.lease_expires_at is not None and item.lease_expires_at < now())
        ):
            raise PermissionDenied(
                "Claim the item before judging it (or your claim expired).", code="not_claimed"
            )
        return Purpose.REVIEW

    async def _purpose_of(self, judgment_id: str) -> str:
        async with self._sessions() as session:
            old = await session.get(Judgment, judgment_id)
        return old.purpose if old is not None else Purpose.REVIEW

    async def _advance(
        self, session: AsyncSession, item: ReviewItem, who: ReviewerIdentity, purpose: str
    ) -> None:
        done = item.judgments_done + (purpose == Purpose.REVIEW)
        state = await _next_state(session, item, purpose, done)
        # Only from the state this judgment was made in: a double submission, or a claim that
        # expired and passed to someone else meanwhile, finds nothing to update and fails.
        expected: tuple[ColumnElement[bool], ...] = (
            ReviewItem.claimed_by == who.id,
            ReviewItem.state == ItemState.OPEN,
            ReviewItem.judgments_done == item.judgments_done,
        )
        if purpose == Purpose.ADJUDICATION:
            expected = (ReviewItem.state == item.state,)
        result = await session.execute(
            update(ReviewItem)
            .where(ReviewItem.id == item.id, *expected)
            .values(
                judgments_done=done,
                state=state,
                claimed_by=None,
                lease_expires_at=None,
                done_at=now() if state == ItemState.DONE else None,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise PermissionDenied(
                "The item changed while you judged it (your claim expired, "
                "or this judgment was already submitted).",
                code="not_claimed",
            )


async def _next_state(session: AsyncSession, item: ReviewItem, purpose: str, done: int) -> str:
    """Open until enough reviewers judged; then done, or to a lead when their verdicts differ.
    An adjudication always closes the item."""
    if purpose != Purpose.REVIEW:
        return ItemState.DONE
    if done < item.reviewers_needed:
        return ItemState.OPEN
    if item.reviewers_needed == 1:
        return ItemState.DONE
    verdicts = set(
        await session.scalars(
            select(Judgment.verdict).where(
                Judgment.item_id == item.id,
                Judgment.purpose == Purpose.REVIEW,
                Judgment.supersedes.is_(None),
            )
        )
    )
    return ItemState.ADJUDICATION if len(verdicts) > 1 else ItemState.DONE


def _check_against(item: ReviewItem, data: JudgmentIn) -> None:
    unknown = set(data.rule_verdicts) - set(item.rule_ids or [])
    if unknown:
        raise InvalidRequest(
            f"Rules {sorted(unknown)} did not fire on this item.", param="rule_verdicts"
        )
    if item.guideline_revision is not None:
        if data.guideline_revision != item.guideline_revision:
            raise InvalidRequest(
                "The judgment must name the guideline revision shown "
                f"({item.guideline_revision[:12]}…).",
                param="guideline_revision",
            )
        if not data.guideline_acknowledged:
            raise InvalidRequest(
                "Acknowledge the guideline before judging.", param="guideline_acknowledged"
            )
    if data.preferred == "alternative" and not item.alternative:
        raise InvalidRequest("This item has no generated alternative.", param="preferred")


def _preferred_text(item: ReviewItem, data: JudgmentIn) -> str | None:
    if data.preferred == "rewrite":
        return data.rewrite
    if data.preferred == "alternative" and isinstance(item.alternative, dict):
        text = item.alternative.get("content")
        return text if isinstance(text, str) else None
    return None  # "original": the export reads the exchange's own answer
