"""The admin API: exchange records and API keys, behind the admin token.

A route's database work is one unit (``UnitDep``): it commits once, or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.audit.events import ADMIN_API
from gateway.auth.keys import key_summary
from gateway.clock import now
from gateway.db.session import after_commit
from gateway.deps import AdminDep, ServicesDep, SessionDep, UnitDep
from gateway.errors import InvalidRequest, NotFound
from gateway.policy.schema import RateLimits
from gateway.records.repository import ExchangeFilter, full, summary
from gateway.records.status import Status
from gateway.records.usage import By, UsageFilter, usage

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/exchanges", summary="Exchange records, newest first")
async def list_exchanges(
    services: UnitDep,
    _admin: AdminDep,
    context: str | None = None,
    status: Status | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Annotated[str | None, Query(description="cursor: the last id of the page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    flt = ExchangeFilter(
        context=context,
        status=status.value if status else None,
        since=since,
        until=until,
        before_id=before,
        limit=limit,
    )
    rows, more = await services.exchanges.page(flt)
    return {
        "object": "list",
        "data": [summary(r) for r in rows],
        "has_more": more,
        "next_cursor": rows[-1].id if more and rows else None,
    }


@router.get("/exchanges/{exchange_id}", summary="One exchange record in full")
async def get_exchange(exchange_id: str, services: UnitDep, _admin: AdminDep) -> dict[str, Any]:
    row = await services.exchanges.get(exchange_id)
    if row is None:
        raise NotFound(f"No exchange '{exchange_id}'.", param="exchange_id")
    return full(row)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(None, ge=1, le=3650)
    limits: RateLimits | None = Field(None, description="the key's own rate limits and budgets")


@router.post(
    "/keys", summary="Create an API key (the key is shown only in this answer)", status_code=201
)
async def create_key(payload: KeyCreate, services: UnitDep, _admin: AdminDep) -> dict[str, Any]:
    if services.policies.get(payload.context) is None:
        raise InvalidRequest(
            f"No deployment context '{payload.context}' is served; known: "
            f"{', '.join(services.policies.contexts) or 'none'}.",
            param="context",
        )
    new = await services.keys.create(
        payload.context, payload.name, payload.expires_in_days, payload.limits, actor=ADMIN_API
    )
    return {
        "id": new.id,
        "key": new.secret,
        "context": new.context,
        "name": new.name,
        "expires_at": new.expires_at.isoformat() if new.expires_at else None,
        "limits": payload.limits.model_dump(exclude_none=True) if payload.limits else None,
    }


@router.put("/keys/{key_id}/limits", summary="Replace an API key's own limits ({} for none)")
async def set_key_limits(
    key_id: str, limits: RateLimits, services: UnitDep, session: SessionDep, _admin: AdminDep
) -> dict[str, Any]:
    if not await services.keys.set_limits(key_id, limits, actor=ADMIN_API):
        raise NotFound(f"No key '{key_id}'.", param="key_id")
    # the principal (and its limits) is cached: forget it once the change is visible to all
    after_commit(session, services.authenticator.forget)
    return {"id": key_id, "limits": limits.model_dump(exclude_none=True) or None}


@router.get("/keys", summary="API keys (never the keys themselves)")
async def list_keys(services: UnitDep, _admin: AdminDep) -> dict[str, Any]:
    current = now()
    return {"object": "list", "data": [key_summary(k, current) for k in await services.keys.list()]}


@router.delete("/keys/{key_id}", summary="Revoke an API key")
async def revoke_key(
    key_id: str, services: UnitDep, session: SessionDep, _admin: AdminDep
) -> dict[str, Any]:
    if not await services.keys.revoke(key_id, actor=ADMIN_API):
        raise NotFound(f"No active key '{key_id}'.", param="key_id")
    # Forgotten once revoked for all to see: a lookup before the commit would cache it again.
    after_commit(session, services.authenticator.forget)
    return {"id": key_id, "revoked": True}


@router.get("/policies", summary="The contexts served, their revisions, and refused edits")
async def list_policies(services: ServicesDep, _admin: AdminDep) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "context": p.context,
                "revision": p.revision,
                "path": str(p.path),
                "purpose": p.policy.purpose.strip(),
                "owner": p.policy.owner,
                "models": p.policy.models.allow,
                "rules": [r.id for r in p.rules],
                "served_from": services.policies.served_from(p.context),
                "file_error": services.policies.file_error(p.context),
            }
            for p in services.policies.all()
        ],
        "errors": {str(path): error for path, error in services.policies.errors.items()},
    }


@router.get("/policies/revisions/{revision}", summary="The text of a policy revision")
async def get_revision(revision: str, services: UnitDep, _admin: AdminDep) -> dict[str, Any]:
    row = await services.revisions.get(revision)
    if row is None:
        raise NotFound(f"No policy revision '{revision}'.", param="revision")
    return {
        "revision": row.revision,
        "context": row.context,
        "path": row.path,
        "first_seen_at": row.first_seen_at.isoformat(),
        "text": row.text,
    }


@router.get("/findings", summary="Rules that fired, newest first, by rule and context")
async def list_findings(
    services: UnitDep,
    _admin: AdminDep,
    rule: str | None = None,
    context: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await services.exchanges.findings(rule=rule, context=context, since=since, limit=limit)
    return {"object": "list", "data": rows}


@router.get("/usage", summary="Requests, tokens, spend, blocks, limits and errors")
async def get_usage(
    services: UnitDep,
    _admin: AdminDep,
    context: str | None = None,
    key: Annotated[str | None, Query(description="a key's id (key_…)")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by: By | None = None,
) -> dict[str, Any]:
    flt = UsageFilter(context=context, key=key, since=since, until=until, by=by)
    return {"object": "list", "by": by, "data": await usage(services.sessions, flt)}
