"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from gateway.db.migrate import head_revision
from gateway.deps import ServicesDep
from gateway.policy.store import PolicyStore
from gateway.records.recorder import ExchangeRecorder
from gateway.services import Services
from gateway.supervise import Supervisor
from gateway.upstream.router import ModelRouter

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The config loaded, records flowing, backends and background tasks up; "
    "degraded (200) while only the database is unreachable",
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {
        "config": {"ok": True, "models": services.router.aliases},
        "policies": _policies(services.policies),
        "database": await _database(services),
        "recorder": _recorder(services.recorder),
        "background": _background(services.supervisor),
        "limits": await services.quota.health(),
        "backends": _backends(services.router, services.policies),
    }
    status = _status(checks)
    return JSONResponse(
        {"status": status, "checks": checks}, status_code=503 if status == "not_ready" else 200
    )


def _status(checks: dict[str, Any]) -> str:
    """ready, degraded or not_ready. An unreachable database alone is ``degraded``, still
    serving, while the recorder can spool and this process knows keys to serve on their
    recent lookup (``auth.stale_seconds``); records replay once it is back. Taking every
    replica out of service at once, as a 503 would, turns a database outage into a traffic
    outage. A process that knows no key (one started during the outage) is not ready."""
    failing = {name for name, check in checks.items() if not check["ok"]}
    if not failing:
        return "ready"
    database = checks["database"]
    if failing == {"database"} and database.get("reachable") is False and database["known_keys"]:
        return "degraded"
    return "not_ready"


def _backends(router: ModelRouter, store: PolicyStore) -> dict[str, Any]:
    # Passive health (gateway.upstream.health): not ready while an alias some loaded policy
    # allows has no backend left to serve it (each ejected, and each of the fallbacks that
    # policy allows); a half-open one counts, as the next request probes it. An alias no
    # policy allows serves nobody: its backends' state is reported, not counted.
    health = router.health
    allows = [set(p.policy.models.allow) for p in store.all()]

    def served(alias: str, allowed: set[str] | None) -> bool:
        fallbacks = [f for f in router.fallbacks_of(alias) if allowed is None or f in allowed]
        return any(health.available(b) for a in (alias, *fallbacks) for b in router.backends_of(a))

    aliases = router.aliases
    unserved = [a for a in aliases if any(a in ok and not served(a, ok) for ok in allows)]
    unused = [a for a in aliases if not any(a in ok for ok in allows) and not served(a, None)]
    budget = router.budget
    return {
        "ok": not unserved,
        "aliases_without_backend": unserved,
        "unallowed_without_backend": unused,
        "backends": {name: health.report(name) for name in health.names},
        "retries": {
            "made": budget.stats.retries,
            "denied_by_budget": budget.stats.denied,
            "requests_in_flight": budget.active,  # what the budget's share is of
        },
    }


def _policies(store: PolicyStore) -> dict[str, Any]:
    # A refused edit does not make the gateway unready: the last good revision keeps serving
    # (an unready fleet after one bad ConfigMap edit would be an outage), from memory or, after
    # a restart, from the database; it is reported.
    return {
        "ok": bool(store.contexts),
        "refused_edits": len(store.errors),
        "contexts": {p.context: p.short_revision for p in store.all()},
        "from_database": {
            p.context: {
                "revision": p.short_revision,
                "file": str(p.path),
                "error": store.file_error(p.context),
            }
            for p in store.restored
        },
        "errors": [str(error) for error in store.errors.values()],
    }


async def _database(services: Services) -> dict[str, Any]:
    try:
        async with services.sessions() as session:
            version = await session.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception as exc:  # any driver error: unreachable (degraded, see _status)
        return {
            "ok": False,
            "reachable": False,
            "known_keys": services.authenticator.known_keys(),
            "error": f"{type(exc).__name__}: {exc}"[:300],
        }
    expected = head_revision()
    return {"ok": version == expected, "reachable": True, "schema": version, "expected": expected}


def _recorder(recorder: ExchangeRecorder) -> dict[str, Any]:
    return recorder.health()  # the database, the spool, quarantine and replay


def _background(supervisor: Supervisor) -> dict[str, Any]:
    # A background task that failed (and, if it restarts, has not settled since) is named
    # here with its error: the gateway is not ready while it is down.
    return {
        "ok": supervisor.healthy,
        "tasks": supervisor.status(),
        "failed": {name: f.error for name, f in supervisor.failures.items()},
    }
