"""Dependency aliases; routes use these, never ``Depends(...)`` inline."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.pipeline.run import Pipeline
from gateway.services import Services


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def _admin(
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
PipelineDep = Annotated[Pipeline, Depends(_pipeline)]
AdminDep = Annotated[None, Depends(_admin)]
