"""Rendering pages: one Jinja2 environment (autoescaping on), strict security headers on every
page, and errors shown as a page rather than as JSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.errors import AuthenticationFailed, GatewayError
from gateway.web.deps import web_state
from gateway.web.sessions import COOKIE, SignedIn

HERE = Path(__file__).resolve().parent
PREFIX = "/ui"

# Everything the page uses is served by the gateway itself; no inline script, no framing.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def templates() -> Jinja2Templates:
    built = Jinja2Templates(directory=HERE / "templates")
    assert built.env.autoescape, "pages render untrusted text: autoescaping must stay on"
    built.env.filters["seg"] = lambda v: quote(str(v), safe="")
    built.env.filters["basename"] = lambda v: PurePath(str(v)).name
    built.env.filters["age"] = age
    built.env.globals["prefix"] = PREFIX
    return built


def age(since: datetime, at: datetime) -> str:
    """How long ago, in the unit a person reads at a glance."""
    seconds = max((at - since).total_seconds(), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return (
                f"{seconds / size:.0f} {unit}" if unit == "min" else f"{seconds / size:.1f} {unit}"
            )
    return f"{seconds:.0f} s"


def page(
    request: Request,
    name: str,
    signed: SignedIn | None,
    status: int = 200,
    **context: Any,
) -> Response:
    engine: Jinja2Templates = request.app.state.templates
    response = engine.TemplateResponse(
        request,
        name,
        {"signed": signed, "who": signed.who if signed else None, **context},
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(path: str) -> RedirectResponse:
    """After a form: see the result with a GET (so a reload does not send the form again)."""
    response = RedirectResponse(path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def is_page(request: Request) -> bool:
    """A request for the web page (not its static files), answered with HTML."""
    path = request.url.path
    return (path == PREFIX or path.startswith(PREFIX + "/")) and not path.startswith(
        PREFIX + "/static/"
    )


async def _signed_in(request: Request) -> SignedIn | None:
    """Who is signed in, for the error page's navigation; nobody when that cannot be told
    (no session, or the database is what failed): the page then offers to sign in."""
    state = web_state(request)
    if state is None:
        return None
    try:
        signed = await state.sign_ins.resume(request.cookies.get(COOKIE))
    except (GatewayError, SQLAlchemyError, OSError):
        return None
    return signed


async def error_page(request: Request, exc: GatewayError) -> Response:
    if isinstance(exc, AuthenticationFailed) and request.url.path != f"{PREFIX}/login":
        target = PREFIX + "/"
        if request.method == "GET":
            query = request.url.query
            target = request.url.path + (f"?{query}" if query else "")
        return redirect(f"{PREFIX}/login?next={quote(target, safe='/')}")  # query encoded
    return page(request, "error.html", await _signed_in(request), exc.status, failure=exc)
