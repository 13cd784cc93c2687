"""Admins: reviewer accounts. Take a queue away, disable or enable an account, rotate a token.

The same service as ``gateway review unassign|disable|enable|rotate-token`` and the review API,
so each takes effect at once everywhere: the API, claims, and every web session.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.audit.events import reviewer_actor
from gateway.deps import UnitDep
from gateway.errors import InvalidRequest
from gateway.review.states import ReviewerRole
from gateway.services import Services
from gateway.web.deps import FormDep, SignedInDep
from gateway.web.forms import text
from gateway.web.render import PREFIX, page, redirect
from gateway.web.sessions import SignedIn

router = APIRouter(prefix=PREFIX, include_in_schema=False)

NOTICES = {
    "unassigned": "Queue taken away; the reviewer's claims in it went back to the queue.",
    "disabled": "Reviewer disabled: their sessions ended and their claims went back.",
    "enabled": "Reviewer enabled again.",
}


async def _page(
    request: Request,
    signed: SignedIn,
    services: Services,
    *,
    notice: str | None = None,
    new_token: tuple[str, str] | None = None,
) -> Response:
    return page(
        request,
        "reviewers.html",
        signed,
        reviewers=await services.reviewers.list(),
        notice=NOTICES.get(notice or ""),
        new_token=new_token,
    )


@router.get("/reviewers")
async def reviewers(
    request: Request, signed: SignedInDep, services: UnitDep, notice: str | None = None
) -> Response:
    signed.who.require(ReviewerRole.ADMIN)
    return await _page(request, signed, services, notice=notice)


@router.post("/reviewers/{reviewer_id}/unassign")
async def unassign(
    reviewer_id: str, signed: SignedInDep, form: FormDep, services: UnitDep
) -> Response:
    signed.who.require(ReviewerRole.ADMIN)
    context, queue = text(form, "context"), text(form, "queue")
    if context is None or queue is None:
        raise InvalidRequest("Name the context and the queue to take away.", param="queue")
    await services.reviewers.unassign(
        reviewer_id, context, queue, actor=reviewer_actor(signed.who.id)
    )
    return redirect(f"{PREFIX}/reviewers?notice=unassigned")


@router.post("/reviewers/{reviewer_id}/disable")
async def disable(
    reviewer_id: str, signed: SignedInDep, _: FormDep, services: UnitDep
) -> Response:
    signed.who.require(ReviewerRole.ADMIN)
    if reviewer_id == signed.who.id:
        raise InvalidRequest("You cannot disable your own account.", param="reviewer_id")
    await services.reviewers.disable(reviewer_id, actor=reviewer_actor(signed.who.id))
    return redirect(f"{PREFIX}/reviewers?notice=disabled")


@router.post("/reviewers/{reviewer_id}/enable")
async def enable(
    reviewer_id: str, signed: SignedInDep, _: FormDep, services: UnitDep
) -> Response:
    signed.who.require(ReviewerRole.ADMIN)
    await services.reviewers.enable(reviewer_id, actor=reviewer_actor(signed.who.id))
    return redirect(f"{PREFIX}/reviewers?notice=enabled")


@router.post("/reviewers/{reviewer_id}/rotate-token")
async def rotate_token(
    reviewer_id: str, request: Request, signed: SignedInDep, _: FormDep, services: UnitDep
) -> Response:
    """The new token is shown once, on this answer (never in a URL); rotating your own token
    ends this session too, so you sign in again with the new one."""
    signed.who.require(ReviewerRole.ADMIN)
    token = await services.reviewers.rotate_token(reviewer_id, actor=reviewer_actor(signed.who.id))
    return await _page(request, signed, services, new_token=(reviewer_id, token))
