"""Dependency aliases; routes use these, never ``Depends(...)`` inline.

The lifespan yields the gateway's state (``gateway.app.LifespanState``); Starlette hands a copy
of that mapping to every request as its ``state``. ``AppState`` is this layer's part of it, a
frozen dataclass read back with a type check, so no route reads an untyped ``app.state``. Every
dependency is ``async def``: a plain ``def`` would hop to the thread pool on every request.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.pipeline.run import Pipeline
from gateway.services import Services

#: the key of ``AppState`` in the lifespan's state
APP_STATE = "gateway"


@dataclass(frozen=True, slots=True)
class AppState:
    """What the lifespan built, as every request sees it."""

    services: Services
    pipeline: Pipeline


def app_state(connection: HTTPConnection) -> AppState:
    """The lifespan's ``AppState``; a clear error when the app runs without its lifespan."""
    state = connection.scope.get("state", {}).get(APP_STATE)
    if not isinstance(state, AppState):
        raise RuntimeError("the gateway's lifespan has not run: serve it with a lifespan")
    return state


async def _services(connection: HTTPConnection) -> Services:
    return app_state(connection).services


async def _session(
    services: Annotated[Services, Depends(_services)],
) -> AsyncIterator[AsyncSession]:
    # One unit of work per request: what the route's services do in it commits once, when the
    # route returns and before the answer is sent, or rolls back together if anything raised.
    async with services.sessions.begin() as session:
        yield session


async def _admin(
    services: Annotated[Services, Depends(_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    expected = services.admin_token
    if expected is None:
        raise PermissionDenied(
            f"The admin API is disabled: set {services.config.admin_token_env} to enable it.",
            code="admin_disabled",
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        raise AuthenticationFailed("Invalid admin token.", code="invalid_admin_token")


ServicesDep = Annotated[Services, Depends(_services)]
AdminDep = Annotated[None, Depends(_admin)]
#: the request's unit of work: commits once when the route returns (before the answer is
#: sent), rolls back whole when it raises
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _unit(services: ServicesDep, session: SessionDep) -> Services:
    return services.in_unit(session)


#: the services doing their database work in the request's unit of work (``SessionDep``)
UnitDep = Annotated[Services, Depends(_unit)]
