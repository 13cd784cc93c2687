"""Retention: what each context's policy says its records may keep, applied to the records
already written (docs/audit.md "Retention and erasure").

For every served context:

- ``record.retention_days``: the content of records received longer ago is erased;
- ``record.content: none``: the context keeps no content, so any record that still has some
  (kept while the policy said ``full`` or ``redacted``) is erased;
- ``record.content: redacted``: records kept in full (decided by a revision that said
  ``full``) are erased; they are not redacted after the fact, since the redaction is computed
  from the exchange as it ran, under its own revision.

The gateway runs a pass every ``audit.purge_seconds`` (``Retention.run``, supervised);
``gateway exchanges purge`` runs the same pass once. Each erasure appends its events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.clock import now
from gateway.db.models import Exchange, PolicyRevision
from gateway.db.session import Sessions
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.store import PolicyStore
from gateway.records.entries import describe
from gateway.records.erasure import Eraser, Who

log = logging.getLogger("gateway.records")


@dataclass(frozen=True, slots=True)
class Step:
    """One erasure a pass makes for a context: why, and over which records."""

    context: str
    why: str
    before: datetime | None = None
    #: erase what these revisions decided (None: whatever decided it)
    revisions: tuple[str, ...] | None = None

    def where(self) -> list[ColumnElement[bool]]:
        where = [Exchange.context == self.context]
        if self.before is not None:
            where.append(Exchange.received_at < self.before)
        if self.revisions is not None:
            where.append(Exchange.policy_revision.in_(self.revisions))
        return where


@dataclass(frozen=True, slots=True)
class Done:
    step: Step
    erased: int


def kept_content(text: str) -> str:
    """What a stored revision's text says its records keep (``full`` when it says nothing)."""
    try:
        loaded: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return "full"
    record = loaded.get("record") if isinstance(loaded, dict) else None
    content = record.get("content") if isinstance(record, dict) else None
    return content if content in ("full", "redacted", "none") else "full"


class Retention:
    """The retention pass over the records of the contexts ``policies`` serves."""

    def __init__(self, sessions: Sessions, eraser: Eraser, actor: str) -> None:
        self._sessions = sessions
        self._eraser = eraser
        self._actor = actor

    @classmethod
    def by_gateway(cls, sessions: Sessions, audit: AuditChain) -> Retention:
        """The gateway's own periodic pass (its events' actor: ``gateway``)."""
        return cls(sessions, Eraser(sessions, audit), events.GATEWAY)

    async def plan(self, policies: Iterable[CompiledPolicy]) -> list[Step]:
        """The erasures a pass would make now, context by context."""
        steps = []
        moment = now()
        for compiled in policies:
            record = compiled.policy.record
            if record.retention_days is not None:
                days = record.retention_days
                steps.append(
                    Step(
                        compiled.context,
                        f"record.retention_days: {days}",
                        before=moment - timedelta(days=days),
                    )
                )
            if record.content == "none":
                steps.append(Step(compiled.context, "record.content: none"))
            elif record.content == "redacted":
                full = await self._full_revisions(compiled.context)
                if full:
                    steps.append(
                        Step(compiled.context, "record.content: redacted", revisions=full)
                    )
        return steps

    async def count(self, step: Step) -> int:
        return await self._eraser.count(step.where())

    async def apply(self, step: Step) -> int:
        who = Who(self._actor, f"retention: {step.why}")
        if step.before is not None and step.revisions is None:
            return await self._eraser.received_before(step.context, step.before, who)
        return await self._eraser.decided_by(step.context, step.revisions, who)

    async def once(self, policies: Iterable[CompiledPolicy]) -> list[Done]:
        """One pass: every step planned now, applied."""
        return [Done(step, await self.apply(step)) for step in await self.plan(policies)]

    async def run(self, interval: float, policies: PolicyStore) -> None:
        """A pass now and every ``interval`` seconds after, over what ``policies`` serves
        then, until cancelled. A database that is away only skips a pass (the gateway stays
        ready, as its recorder does); any other error ends it for its supervisor."""
        while True:
            try:
                finished = await self.once(policies.all())
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("retention pass skipped, the database is away: %s", describe(exc))
                finished = []
            for done in finished:
                if done.erased:
                    log.info(
                        "retention: erased the content of %d exchanges of %s (%s)",
                        done.erased,
                        done.step.context,
                        done.step.why,
                    )
            await asyncio.sleep(interval)

    async def _full_revisions(self, context: str) -> tuple[str, ...]:
        """The context's stored revisions whose records kept content in full."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(PolicyRevision.revision, PolicyRevision.text).where(
                    PolicyRevision.context == context
                )
            )
            return tuple(sorted(r for r, text in rows.all() if kept_content(text) == "full"))
