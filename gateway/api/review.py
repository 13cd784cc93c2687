"""The review API: queues, claims, judgments, escalation, agreement, candidate test cases.

A route's database work is one unit (``UnitDep``): it commits once, or not at all. Two kinds
of route keep transactions of their own: a claim (the lease is taken and committed before the
item's alternative answer is asked of a model, which no transaction should wait on), and the
exports (the rows are streamed on a session of their own, and the export recorded once).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import FileResponse, Response

from gateway.audit.events import reviewer_actor
from gateway.db.models import Reviewer
from gateway.deps import ServicesDep, UnitDep
from gateway.errors import InvalidRequest
from gateway.export.rows import ExportFilter
from gateway.review.alternatives import ensure_alternative
from gateway.review.exporting import Exporter, export_by, export_file, export_records
from gateway.review.judging import JudgmentIn
from gateway.review.reviewers import ReviewerIdentity
from gateway.review.views import item_summary, item_view, judgment_view

router = APIRouter(prefix="/review", tags=["review"])


async def _reviewer(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> ReviewerIdentity:
    return await services.reviewers.authenticate(authorization)


ReviewerDep = Annotated[ReviewerIdentity, Depends(_reviewer)]


@router.get("/me", summary="Who the token belongs to, and the queues they may work")
async def me(who: ReviewerDep) -> dict[str, Any]:
    return {
        "id": who.id,
        "pseudonym": who.pseudonym,
        "role": who.role,
        "kind": who.kind,
        "queues": [{"context": c, "queue": q} for c, q in sorted(who.queues)],
    }


@router.get("/queues", summary="The queues you may see, with their counts")
async def queues(who: ReviewerDep, services: UnitDep) -> dict[str, Any]:
    rows = await services.queues.status(who)
    return {"object": "list", "data": [r.as_dict() for r in rows]}


@router.post(
    "/queues/{context}/{queue}/claim", summary="Claim the next item (a lease)", response_model=None
)
async def claim(
    context: str, queue: str, who: ReviewerDep, services: ServicesDep
) -> dict[str, Any] | Response:
    item = await services.queues.claim(who, context, queue)
    if item is None:
        return Response(status_code=204)
    item = await ensure_alternative(services, item)
    return await item_view(services.sessions, services.policies, who, item)


@router.get("/items/{item_id}", summary="One item, as a reviewer sees it")
async def get_item(item_id: str, who: ReviewerDep, services: UnitDep) -> dict[str, Any]:
    item = await services.queues.item_for(who, item_id)
    return await item_view(services.sessions, services.policies, who, item)


@router.post("/items/{item_id}/judgments", status_code=201, summary="Judge a claimed item")
async def judge(
    item_id: str, payload: JudgmentIn, who: ReviewerDep, services: UnitDep
) -> dict[str, Any]:
    return judgment_view(await services.judging.judge(who, item_id, payload))


@router.post(
    "/judgments/{judgment_id}/corrections",
    status_code=201,
    summary="Correct your judgment (a new judgment that supersedes it)",
)
async def correct(
    judgment_id: str, payload: JudgmentIn, who: ReviewerDep, services: UnitDep
) -> dict[str, Any]:
    return judgment_view(await services.judging.correct(who, judgment_id, payload))


@router.post("/items/{item_id}/skip", summary="Give the claim back")
async def skip(item_id: str, who: ReviewerDep, services: UnitDep) -> dict[str, Any]:
    return item_summary(await services.queues.release(who, item_id, escalate=False))


class EscalateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=4000, description="why a lead should look")


@router.post("/items/{item_id}/escalate", summary="Send the item to a lead")
async def escalate(
    item_id: str, who: ReviewerDep, services: UnitDep, payload: EscalateIn | None = None
) -> dict[str, Any]:
    note = (payload.note or "").strip() or None if payload else None
    return item_summary(await services.queues.release(who, item_id, escalate=True, note=note))


@router.get("/adjudication", summary="Escalated and disputed items of your queues (leads)")
async def adjudication(who: ReviewerDep, services: UnitDep) -> dict[str, Any]:
    who.require("lead")
    items = await services.review_data.needing_lead(who)
    return {"object": "list", "data": [item_summary(i) for i in items]}


@router.get("/agreement", summary="Krippendorff's alpha per queue and per rule")
async def agreement(
    who: ReviewerDep, services: UnitDep, context: str, queue: str
) -> dict[str, Any]:
    who.require("lead")
    return await services.review_data.agreement(who, context, queue)


@router.get("/candidate-tests", summary="Reviewers' verdicts, as policy test cases that fail now")
async def candidates(who: ReviewerDep, services: UnitDep, context: str) -> dict[str, Any]:
    who.require("lead")
    found = await services.review_data.candidate_cases(who, context)
    return {"context": context, "cases": found.cases, "already_passing": found.passing}


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["trl", "openai", "hh", "kto"]
    context: str | None = None
    queue: str | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    include_partial: bool = Field(
        False, description="also items below reviewers_per_item or with a lead, marked partial"
    )


@router.post("/exports", status_code=201, summary="Export preference data (admins)")
async def create_export(
    payload: ExportIn, who: ReviewerDep, services: ServicesDep
) -> dict[str, Any]:
    who.require("admin")
    flt = ExportFilter(
        payload.format,
        payload.context,
        payload.queue,
        payload.since,
        payload.until,
        payload.include_partial,
    )
    summary = await export_by(
        services.sessions,
        services.policies,
        services.config.exports_dir,
        flt,
        Exporter(f"{who.pseudonym} ({who.id})", reviewer_actor(who.id), services.audit),
    )
    return {**asdict(summary), "path": str(summary.path)}


@router.get("/exports", summary="Every export: who, what, when, with which filter (admins)")
async def list_exports(who: ReviewerDep, services: ServicesDep) -> dict[str, Any]:
    who.require("admin")
    data = [
        {
            "id": r.id,
            "exported_by": r.exported_by,
            "format": r.format,
            "filter": r.filter,
            "rows": r.rows,
            "sha256": r.sha256,
            "created_at": r.created_at.isoformat(),
        }
        for r in await export_records(services.sessions)
    ]
    return {"object": "list", "data": data}


@router.get(
    "/exports/{export_id}/{name}", summary="Download an export's file (admins)", response_model=None
)
async def download(
    export_id: str,
    name: Literal["data.jsonl", "provenance.jsonl", "README.md"],
    who: ReviewerDep,
    services: ServicesDep,
) -> FileResponse:
    who.require("admin")
    path = await export_file(services.sessions, export_id, name)
    return FileResponse(path, filename=f"{export_id}-{name}")


def reviewer_view(
    reviewer: Reviewer, queues: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """A reviewer account as admins see it: never the token, nor its digest."""
    shown = (
        {}
        if queues is None
        else {"queues": [{"context": c, "queue": q} for c, q in sorted(queues)]}
    )
    return {
        **shown,
        "id": reviewer.id,
        "name": reviewer.name,
        "pseudonym": reviewer.pseudonym,
        "role": reviewer.role,
        "kind": reviewer.kind,
        "created_at": reviewer.created_at.isoformat(),
        "disabled_at": reviewer.disabled_at.isoformat() if reviewer.disabled_at else None,
    }


@router.get("/reviewers", summary="Reviewer accounts and their queues (admins)")
async def list_reviewers(who: ReviewerDep, services: UnitDep) -> dict[str, Any]:
    who.require("admin")
    data = [reviewer_view(r, q) for r, q in await services.reviewers.list()]
    return {"object": "list", "data": data}


@router.delete(
    "/reviewers/{reviewer_id}/queues/{context}/{queue}",
    summary="Take a queue away from a reviewer (admins)",
)
async def unassign_reviewer(
    reviewer_id: str, context: str, queue: str, who: ReviewerDep, services: UnitDep
) -> dict[str, Any]:
    who.require("admin")
    await services.reviewers.unassign(reviewer_id, context, queue, actor=reviewer_actor(who.id))
    return {"id": reviewer_id, "context": context, "queue": queue, "assigned": False}


@router.post("/reviewers/{reviewer_id}/disable", summary="Disable a reviewer at once (admins)")
async def disable_reviewer(
    reviewer_id: str, who: ReviewerDep, services: UnitDep
) -> dict[str, Any]:
    who.require("admin")
    if reviewer_id == who.id:
        raise InvalidRequest("You cannot disable your own account.", param="reviewer_id")
    reviewer = await services.reviewers.disable(reviewer_id, actor=reviewer_actor(who.id))
    return reviewer_view(reviewer)


@router.post("/reviewers/{reviewer_id}/enable", summary="Enable a disabled reviewer (admins)")
async def enable_reviewer(
    reviewer_id: str, who: ReviewerDep, services: UnitDep
) -> dict[str, Any]:
    who.require("admin")
    return reviewer_view(
        await services.reviewers.enable(reviewer_id, actor=reviewer_actor(who.id))
    )


@router.post(
    "/reviewers/{reviewer_id}/rotate-token",
    summary="A new token for a reviewer; the old one ends at once (admins)",
)
async def rotate_reviewer_token(
    reviewer_id: str, who: ReviewerDep, services: UnitDep
) -> dict[str, Any]:
    who.require("admin")
    token = await services.reviewers.rotate_token(reviewer_id, actor=reviewer_actor(who.id))
    return {"id": reviewer_id, "token": token}
