"""What every page needs: who is signed in, and a form that passed the CSRF checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from gateway.deps import ServicesDep
from gateway.web.forms import check_csrf, check_origin
from gateway.web.sessions import COOKIE, SignedIn


async def _signed_in(request: Request, services: ServicesDep) -> SignedIn:
    return await services.web_sessions.resume(request.cookies.get(COOKIE))


SignedInDep = Annotated[SignedIn, Depends(_signed_in)]


async def _posted(request: Request, signed: SignedInDep) -> FormData:
    check_origin(request)
    form = await request.form()
    check_csrf(form, signed.csrf)
    return form


FormDep = Annotated[FormData, Depends(_posted)]
