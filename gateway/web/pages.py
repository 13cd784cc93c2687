"""Signing in and out, the queues page, and the guidelines."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from gateway.db.models import GuidelineRevision, Reviewer
from gateway.deps import UnitDep
from gateway.errors import AuthenticationFailed, NotFound
from gateway.review.queue import QueueStatus
from gateway.review.reviewers import ReviewerIdentity
from gateway.review.states import ReviewerRole
from gateway.services import Services
from gateway.web.deps import FormDep, SignedInDep, SignInsDep
from gateway.web.forms import check_csrf, check_origin, text
from gateway.web.render import PREFIX, page, redirect
from gateway.web.sessions import COOKIE, WebSessions

router = APIRouter(prefix=PREFIX, include_in_schema=False)

LOGIN_COOKIE = "situate_login"

NOTICES = {
    "judged": "Judgment saved.",
    "skipped": "Item given back to the queue.",
    "escalated": "Item sent to a lead.",
    "empty": "Nothing is waiting for you in that queue.",
    "adjudicated": "Adjudication saved.",
    "corrected": "Correction saved; your earlier judgment stays on record, superseded.",
    "signed-out": "You are signed out.",
}


def _next(target: str | None) -> str:
    """Only a path of this page: never another site after sign-in."""
    if target and target.startswith(PREFIX + "/"):
        return target
    return PREFIX + "/"


def _secure(request: Request) -> bool:
    """Cookies only over TLS when the browser's side of the connection is TLS (a proxy in
    front says so in X-Forwarded-Proto; trusting it can only make the cookie stricter)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return request.url.scheme == "https" or forwarded == "https"


def _login_page(request: Request, sign_ins: WebSessions, status: int, **context: Any) -> Response:
    hours = f"{sign_ins.lifetime.total_seconds() / 3600:g}"
    return page(request, "login.html", None, status, hours=hours, **context)


@router.get("", include_in_schema=False)
async def root() -> Response:
    return redirect(PREFIX + "/")


@router.get("/login")
async def login_form(
    request: Request, sign_ins: SignInsDep, next: str | None = None, notice: str | None = None
) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = _login_page(
        request, sign_ins, 200, next=_next(next), csrf=csrf, notice=NOTICES.get(notice or "")
    )
    response.set_cookie(
        LOGIN_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request), path=PREFIX
    )
    return response


@router.post("/login")
async def login(request: Request, sign_ins: SignInsDep) -> Response:
    check_origin(request)
    form = await request.form()
    check_csrf(form, request.cookies.get(LOGIN_COOKIE))
    target = _next(text(form, "next"))
    try:
        cookie, _ = await sign_ins.start(text(form, "token") or "")
    except AuthenticationFailed as exc:
        csrf = request.cookies.get(LOGIN_COOKIE, "")
        return _login_page(request, sign_ins, 401, next=target, csrf=csrf, error=exc.message)
    await sign_ins.end(request.cookies.get(COOKIE))
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(sign_ins.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path=PREFIX,
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request, _: FormDep, sign_ins: SignInsDep) -> Response:
    await sign_ins.end(request.cookies.get(COOKIE))
    response = redirect(f"{PREFIX}/login?notice=signed-out")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def queue_rows(services: Services, who: ReviewerIdentity) -> list[QueueStatus]:
    """Every queue the reviewer may work, with zeros where nothing is waiting yet."""
    rows = {(r.context, r.queue): r for r in await services.queues.status(who)}
    known = set(who.queues)
    if who.role == ReviewerRole.ADMIN:
        known |= {(p.context, q) for p in services.policies.all() for q in p.policy.review.queues}
    for context, queue in known - set(rows):
        rows[(context, queue)] = QueueStatus(context, queue, 0, 0, 0, 0)
    return [rows[k] for k in sorted(rows)]


@router.get("/")
async def home(
    request: Request,
    signed: SignedInDep,
    services: UnitDep,
    notice: str | None = None,
    queue: str | None = None,
) -> Response:
    rows = await queue_rows(services, signed.who)
    return page(
        request,
        "home.html",
        signed,
        queues=rows,
        progress=await services.queues.progress(signed.who.id),
        recent=await services.queues.recent(signed.who.id),
        notice=NOTICES.get(notice or ""),
        notice_queue=queue if queue in {f"{r.context}/{r.queue}" for r in rows} else None,
    )


async def pseudonyms(services: Services, reviewer_ids: Iterable[str]) -> dict[str, str]:
    """The pseudonym of each reviewer named: what the page and the exports call people."""
    wanted = set(reviewer_ids)
    if not wanted:
        return {}
    query = select(Reviewer.id, Reviewer.pseudonym).where(Reviewer.id.in_(wanted))
    async with services.sessions() as session:
        return {rid: name for rid, name in (await session.execute(query)).tuples()}


@router.get("/items/{item_id}/guideline")
async def guideline(
    item_id: str, request: Request, signed: SignedInDep, services: UnitDep
) -> Response:
    """The guideline revision an item was queued under: one text may serve several queues, so
    access follows the item, not the queue the text was first seen in."""
    item = await services.queues.item_for(signed.who, item_id)
    async with services.sessions() as session:
        found = (
            await session.get(GuidelineRevision, item.guideline_revision)
            if item.guideline_revision
            else None
        )
    if found is None:
        raise NotFound(f"Item '{item_id}' has no recorded guideline.", code="guideline_not_found")
    return page(request, "guideline.html", signed, guideline=found, item=item)
