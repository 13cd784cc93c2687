"""Running a preference export: rows streamed from the database into the writer, recorded.

The writer is synchronous and runs in a worker thread; it pulls rows one at a time from the
database cursor on the event loop, so 100,000 pairs never sit in memory together.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, distinct, exists, func, select
from sqlalchemy.orm import aliased

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.clock import now
from gateway.db.models import ExportRecord, GuidelineRevision, Judgment, ReviewItem
from gateway.db.session import Sessions
from gateway.errors import NotFound
from gateway.export.card import CARD_FILE, NOTHING_EXPORTED
from gateway.export.rows import ExportFilter
from gateway.export.scope import ExportScope, Unfinished
from gateway.export.writer import ExportSummary, write_export
from gateway.policy.store import PolicyStore
from gateway.review.agreement import verdict_alpha
from gateway.review.data import ReviewData
from gateway.review.states import ItemState

T = TypeVar("T")


def _blocking(source: AsyncIterator[T], loop: asyncio.AbstractEventLoop) -> Iterator[T]:
    """An async iterator read from another thread, one item at a time."""

    async def step() -> T:
        return await anext(source)

    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(step(), loop).result()
        except StopAsyncIteration:
            return


async def _scope(sessions: Sessions, flt: ExportFilter) -> list[tuple[str, str]]:
    query = select(ReviewItem.context, ReviewItem.queue).distinct()
    if flt.context is not None:
        query = query.where(ReviewItem.context == flt.context)
    if flt.queue is not None:
        query = query.where(ReviewItem.queue == flt.queue)
    async with sessions() as session:
        return [(c, q) for c, q in (await session.execute(query)).all()]


def _item_conditions(flt: ExportFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if flt.context is not None:
        conditions.append(ReviewItem.context == flt.context)
    if flt.queue is not None:
        conditions.append(ReviewItem.queue == flt.queue)
    return conditions


def _window(flt: ExportFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if flt.since is not None:
        conditions.append(Judgment.created_at >= flt.since)
    if flt.until is not None:
        conditions.append(Judgment.created_at < flt.until)
    return conditions


async def export_scope(sessions: Sessions, policies: PolicyStore, flt: ExportFilter) -> ExportScope:
    """What the filter reaches: items, standing judgments (in the window), unfinished items.

    The same selection as the rows (``ReviewData._judgments``), counted in the database, so
    the card can say what an export left out and why one is empty.
    """
    newer = aliased(Judgment)
    standing = ~exists().where(newer.supersedes == Judgment.id)
    judged = (
        select(func.count(Judgment.id))
        .join(ReviewItem, ReviewItem.id == Judgment.item_id)
        .where(standing, *_item_conditions(flt))
    )
    unfinished = (
        select(
            ReviewItem.state,
            ReviewItem.judgments_done,
            ReviewItem.reviewers_needed,
            func.count(distinct(ReviewItem.id)),
            func.count(Judgment.id),
        )
        .join(ReviewItem, ReviewItem.id == Judgment.item_id)
        .where(standing, ReviewItem.state != ItemState.DONE, *_item_conditions(flt), *_window(flt))
        .group_by(ReviewItem.state, ReviewItem.judgments_done, ReviewItem.reviewers_needed)
    )
    async with sessions() as session:
        items = await session.scalar(
            select(func.count(ReviewItem.id)).where(*_item_conditions(flt))
        )
        judgments = await session.scalar(judged)
        in_window = await session.scalar(judged.where(*_window(flt)))
        groups = [Unfinished(*row) for row in (await session.execute(unfinished)).all()]
    return ExportScope(
        items or 0, judgments or 0, in_window or 0, tuple(groups), tuple(policies.contexts)
    )


async def _guidelines(sessions: Sessions) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(GuidelineRevision.revision, GuidelineRevision.text))
        return {revision: text for revision, text in rows.all()}


@dataclass(frozen=True, slots=True)
class Exporter:
    """Who exports (the event's actor; ``by``, the name the export's record keeps) and the
    chain its event goes on."""

    by: str
    actor: str = events.GATEWAY
    audit: AuditChain | None = None


async def run_export(
    sessions: Sessions,
    policies: PolicyStore,
    flt: ExportFilter,
    out_dir: Path,
    exported_by: str | Exporter,
) -> ExportSummary:
    who = exported_by if isinstance(exported_by, Exporter) else Exporter(exported_by)
    data = ReviewData(sessions, policies)
    profiles = await data.reviewers()
    alphas = {
        (c, q): verdict_alpha(await data.ratings(c, q)) for c, q in await _scope(sessions, flt)
    }
    pseudonyms = {rid: p.pseudonym for rid, p in profiles.items()}
    export_id = "exp_" + secrets.token_hex(8)
    scope = await export_scope(sessions, policies, flt)
    rows = data.preference_rows(flt, alphas, pseudonyms)
    loop = asyncio.get_running_loop()
    summary = await asyncio.to_thread(
        write_export,
        out_dir,
        flt,
        _blocking(rows, loop),
        {p.pseudonym: p for p in profiles.values()},
        await _guidelines(sessions),
        exported_by=who.by,
        export_id=export_id,
        scope=scope,
    )
    filter_json: dict[str, Any] = {
        k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(flt).items()
    }
    async with sessions.begin() as session:
        session.add(
            ExportRecord(
                id=export_id,
                exported_by=who.by,
                format=flt.format,
                filter=filter_json,
                rows=summary.records_out,
                path=str(out_dir),
                sha256=summary.sha256,
                created_at=now(),
            )
        )
        event = events.export_created(
            who.actor, export_id, flt.format, filter_json, summary.records_out, summary.sha256
        )
        await events.append(who.audit, session, event)
    return summary


EXPORT_FILES = ("data.jsonl", "provenance.jsonl", "README.md")


async def export_by(
    sessions: Sessions,
    policies: PolicyStore,
    exports_dir: Path,
    flt: ExportFilter,
    by: str | Exporter,
) -> ExportSummary:
    """An export into a new folder of ``exports_dir``, as an admin starts it (API or page)."""
    folder = exports_dir / ("exp-" + now().strftime("%Y%m%dT%H%M%S%f"))
    folder.mkdir(parents=True, exist_ok=True)
    return await run_export(sessions, policies, flt, folder, by)


async def export_records(sessions: Sessions) -> list[ExportRecord]:
    async with sessions() as session:
        return list(await session.scalars(select(ExportRecord).order_by(ExportRecord.created_at)))


async def export_file(sessions: Sessions, export_id: str, name: str) -> Path:
    async with sessions() as session:
        record = await session.get(ExportRecord, export_id)
    if record is None or name not in EXPORT_FILES:
        raise NotFound(f"No export file '{export_id}/{name}'.", code="export_not_found")
    return Path(record.path) / name


async def nothing_exported(sessions: Sessions, export_id: str) -> str | None:
    """Why an export wrote no record, as its card says; None when it wrote some (or is gone)."""
    async with sessions() as session:
        record = await session.get(ExportRecord, export_id)
    if record is None or record.rows:
        return None
    card = Path(record.path) / CARD_FILE
    lines = card.read_text(encoding="utf-8").splitlines() if card.exists() else []
    found = next((line for line in lines if line.startswith(NOTHING_EXPORTED)), None)
    return found.removeprefix(NOTHING_EXPORTED).removesuffix(".") if found else None
