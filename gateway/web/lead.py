"""Leads: backlog, disagreements to adjudicate, agreement per rule. Admins: exports."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from gateway.audit.events import reviewer_actor
from gateway.clock import now
from gateway.deps import ServicesDep, UnitDep
from gateway.errors import InvalidRequest, NotFound
from gateway.export.formats import FORMATS
from gateway.export.rows import ExportFilter
from gateway.review.exporting import (
    Exporter,
    export_by,
    export_file,
    export_records,
    nothing_exported,
)
from gateway.review.states import ReviewerRole
from gateway.services import Services
from gateway.web.deps import FormDep, SignedInDep
from gateway.web.forms import text
from gateway.web.pages import NOTICES, queue_rows
from gateway.web.render import PREFIX, SECURITY_HEADERS, page, redirect
from gateway.web.sessions import SignedIn

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/lead")
async def lead(
    request: Request, signed: SignedInDep, services: UnitDep, notice: str | None = None
) -> Response:
    signed.who.require(ReviewerRole.LEAD)
    return page(
        request,
        "lead.html",
        signed,
        queues=await queue_rows(services, signed.who),
        pending=await services.review_data.needing_lead(signed.who),
        at=now(),
        notice=NOTICES.get(notice or ""),
    )


@router.get("/lead/agreement")
async def agreement(
    request: Request,
    signed: SignedInDep,
    services: UnitDep,
    context: str | None = None,
    queue: str | None = None,
) -> Response:
    """Agreement in each of the lead's queues, or in those of one context, or in one queue."""
    signed.who.require(ReviewerRole.LEAD)
    if context is not None and queue is not None:
        chosen = [(context, queue)]
    else:
        rows = await queue_rows(services, signed.who)
        chosen = [(r.context, r.queue) for r in rows if context in (None, r.context)]
        if context is not None and not chosen:
            raise NotFound(f"No queue of context '{context}' for you.", code="queue_not_found")
    found = [await services.review_data.agreement(signed.who, c, q) for c, q in chosen]
    return page(request, "agreement.html", signed, agreements=found, one=len(found) == 1)


@router.get("/exports")
async def exports(
    request: Request, signed: SignedInDep, services: ServicesDep, made: str | None = None
) -> Response:
    signed.who.require(ReviewerRole.ADMIN)
    nothing = await nothing_exported(services.sessions, made) if made else None
    return await _exports_page(request, signed, services, made=made, nothing=nothing)


async def _exports_page(
    request: Request,
    signed: SignedIn,
    services: Services,
    *,
    made: str | None = None,
    error: str | None = None,
    nothing: str | None = None,
) -> Response:
    return page(
        request,
        "exports.html",
        signed,
        400 if error else 200,
        exports=list(reversed(await export_records(services.sessions))),
        queues=await queue_rows(services, signed.who),
        formats=FORMATS,
        made=made,
        error=error,
        nothing=nothing,
    )


def _when(value: str | None, field: str, *, end: bool = False) -> datetime | None:
    """A day from the form as a UTC instant: its start, or (``end``) the start of the next day,
    so that 'judged until' includes the day chosen."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{value}' is not a date (YYYY-MM-DD).", param=field) from exc
    return datetime.combine(day + timedelta(days=1 if end else 0), time.min, tzinfo=UTC)


def _filter(
    form_format: str | None,
    scope: str | None,
    since: datetime | None,
    until: datetime | None,
    partial: bool = False,
) -> ExportFilter:
    if form_format is None or form_format not in FORMATS:
        raise InvalidRequest("Choose an export format.", param="format")
    context, _, queue = (scope or "").partition("/")
    return ExportFilter(form_format, context or None, queue or None, since, until, partial)


@router.post("/exports")
async def start_export(
    request: Request, signed: SignedInDep, form: FormDep, services: ServicesDep
) -> Response:
    signed.who.require(ReviewerRole.ADMIN)
    try:
        flt = _filter(
            text(form, "format"),
            text(form, "scope"),
            _when(text(form, "since"), "since"),
            _when(text(form, "until"), "until", end=True),
            form.get("include_partial") == "on",
        )
    except InvalidRequest as exc:
        return await _exports_page(request, signed, services, error=exc.message)
    summary = await export_by(
        services.sessions,
        services.policies,
        services.config.exports_dir,
        flt,
        Exporter(
            f"{signed.who.pseudonym} ({signed.who.id})",
            reviewer_actor(signed.who.id),
            services.audit,
        ),
    )
    return redirect(f"{PREFIX}/exports?made={summary.export_id}")


@router.get("/exports/{export_id}/{name}")
async def download(
    export_id: str, name: str, signed: SignedInDep, services: ServicesDep
) -> FileResponse:
    signed.who.require(ReviewerRole.ADMIN)
    path = await export_file(services.sessions, export_id, name)
    return FileResponse(path, filename=f"{export_id}-{name}", headers=SECURITY_HEADERS)
