"""What every page needs: who is signed in, and a form that passed the CSRF checks.

The web layer's part of the lifespan state is ``WebState`` (the sign-in sessions), built by the
app beside ``gateway.deps.AppState``: ``gateway.services`` sits below the web layer and holds
nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.requests import HTTPConnection

from gateway.web.forms import check_csrf, check_origin
from gateway.web.sessions import COOKIE, SignedIn, WebSessions

#: the key of ``WebState`` in the lifespan's state
WEB_STATE = "web"


@dataclass(frozen=True, slots=True)
class WebState:
    sign_ins: WebSessions


def web_state(connection: HTTPConnection) -> WebState | None:
    """The web layer's state; None when the app runs without its lifespan."""
    state = connection.scope.get("state", {}).get(WEB_STATE)
    return state if isinstance(state, WebState) else None


async def _sign_ins(connection: HTTPConnection) -> WebSessions:
    state = web_state(connection)
    if state is None:
        raise RuntimeError("the gateway's lifespan has not run: serve it with a lifespan")
    return state.sign_ins


SignInsDep = Annotated[WebSessions, Depends(_sign_ins)]


async def _signed_in(request: Request, sign_ins: SignInsDep) -> SignedIn:
    return await sign_ins.resume(request.cookies.get(COOKIE))


SignedInDep = Annotated[SignedIn, Depends(_signed_in)]


async def _posted(request: Request, signed: SignedInDep) -> FormData:
    check_origin(request)
    form = await request.form()
    check_csrf(form, signed.csrf)
    return form


FormDep = Annotated[FormData, Depends(_posted)]
