"""Signing in and out, the queues page, and the guidelines."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from gateway.db.models import GuidelineRevision
from gateway.deps import ServicesDep
from gateway.errors import AuthenticationFailed, NotFound
from gateway.review.queue import QueueStatus
from gateway.review.reviewers import ReviewerIdentity
from gateway.services import Services
from gateway.web.deps import FormDep, SignedInDep
from gateway.web.forms import check_csrf, check_origin, text
from gateway.web.render import PREFIX, page, redirect
from gateway.web.sessions import COOKIE

router = APIRouter(prefix=PREFIX, include_in_schema=False)

LOGIN_COOKIE = "situate_login"

NOTICES = {
    "judged": "Judgment saved.",
    "skipped": "Item given back to the queue.",
    "escalated": "Item sent to a lead.",
    "empty": "Nothing is waiting for you in that queue.",
    "adjudicated": "Adjudication saved.",
    "signed-out": "You are signed out.",
}


def _next(target: str | None) -> str:
    """Only a path of this page: never another site after sign-in."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX + "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("", include_in_schema=False)
async def root() -> Response:
    return redirect(PREFIX + "/")


@router.get("/login")
async def login_form(
    request: Request, next: str | None = None, notice: str | None = None
) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        None,
        next=_next(next),
        csrf=csrf,
        notice=NOTICES.get(notice or ""),
    )
    response.set_cookie(
        LOGIN_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request), path=PREFIX
    )
    return response


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    check_origin(request)
    form = await request.form()
    check_csrf(form, request.cookies.get(LOGIN_COOKIE) or secrets.token_hex(16))
    target = _next(text(form, "next"))
    try:
        cookie, _ = await services.web_sessions.start(text(form, "token") or "")
    except AuthenticationFailed as exc:
        csrf = request.cookies.get(LOGIN_COOKIE, "")
        return page(request, "login.html", None, 401, next=target, csrf=csrf, error=exc.message)
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(services.web_sessions.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path=PREFIX,
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request, _: FormDep, services: ServicesDep) -> Response:
    await services.web_sessions.end(request.cookies.get(COOKIE))
    response = redirect(f"{PREFIX}/login?notice=signed-out")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def queue_rows(services: Services, who: ReviewerIdentity) -> list[QueueStatus]:
    """Every queue the reviewer may work, with zeros where nothing is waiting yet."""
    rows = {(r.context, r.queue): r for r in await services.queues.status(who)}
    known = set(who.queues)
    if who.role == "admin":
        known |= {(p.context, q) for p in services.policies.all() for q in p.policy.review.queues}
    for context, queue in known - set(rows):
        rows[(context, queue)] = QueueStatus(context, queue, 0, 0, 0, 0)
    return [rows[k] for k in sorted(rows)]


@router.get("/")
async def home(
    request: Request,
    signed: SignedInDep,
    services: ServicesDep,
    notice: str | None = None,
    queue: str | None = None,
) -> Response:
    return page(
        request,
        "home.html",
        signed,
        queues=await queue_rows(services, signed.who),
        progress=await services.queues.progress(signed.who.id),
        notice=NOTICES.get(notice or ""),
        notice_queue=queue,
    )


@router.get("/guidelines/{revision}")
async def guideline(
    revision: str, request: Request, signed: SignedInDep, services: ServicesDep
) -> Response:
    async with services.sessions() as session:
        found = await session.scalar(
            select(GuidelineRevision).where(GuidelineRevision.revision == revision)
        )
    if found is None or not signed.who.may_see(found.context, found.queue):
        raise NotFound(f"No guideline revision '{revision}'.", code="guideline_not_found")
    return page(request, "guideline.html", signed, guideline=found)
