"""Reading exchange records back: filtered listing with a cursor, and one in full."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from gateway.db.models import Exchange, Finding
from gateway.db.session import Sessions

SUMMARY_FIELDS = (
    "id",
    "endpoint",
    "received_at",
    "context",
    "key_id",
    "requested_model",
    "backend",
    "response_model",
    "stream",
    "status",
    "http_status",
    "error_type",
    "total_tokens",
)


@dataclass(frozen=True, slots=True)
class ExchangeFilter:
    context: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: str | None = None
    limit: int = 50


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def summary(row: Exchange) -> dict[str, Any]:
    return {name: _jsonable(getattr(row, name)) for name in SUMMARY_FIELDS}


def full(row: Exchange) -> dict[str, Any]:
    return {c.key: _jsonable(getattr(row, c.key)) for c in Exchange.__table__.columns}


class ExchangeRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def get(self, exchange_id: str) -> Exchange | None:
        async with self._sessions() as session:
            return await session.get(Exchange, exchange_id)

    async def page(self, flt: ExchangeFilter) -> tuple[list[Exchange], bool]:
        """Newest first; returns the page and whether more rows follow it."""
        async with self._sessions() as session:
            query = await self._query(flt)
            rows = list(await session.scalars(query.limit(flt.limit + 1)))
        return rows[: flt.limit], len(rows) > flt.limit

    async def _query(self, flt: ExchangeFilter) -> Select[Exchange]:
        query = select(Exchange).order_by(Exchange.received_at.desc(), Exchange.id.desc())
        if flt.context is not None:
            query = query.where(Exchange.context == flt.context)
        if flt.status is not None:
            query = query.where(Exchange.status == flt.status)
        if flt.since is not None:
            query = query.where(Exchange.received_at >= flt.since)
        if flt.until is not None:
            query = query.where(Exchange.received_at < flt.until)
        if flt.before_id is not None:
            anchor = await self.get(flt.before_id)
            if anchor is not None:
                query = query.where(
                    (Exchange.received_at < anchor.received_at)
                    | ((Exchange.received_at == anchor.received_at) & (Exchange.id < anchor.id))
                )
        return query

    async def findings(
        self, *, rule: str | None, context: str | None, since: datetime | None, limit: int
    ) -> list[dict[str, Any]]:
        query = select(Finding).order_by(Finding.received_at.desc(), Finding.id.desc())
        if rule is not None:
            query = query.where(Finding.rule == rule)
        if context is not None:
            query = query.where(Finding.context == context)
        if since is not None:
            query = query.where(Finding.received_at >= since)
        async with self._sessions() as session:
            rows = await session.scalars(query.limit(limit))
            return [
                {c.key: _jsonable(getattr(r, c.key)) for c in Finding.__table__.columns}
                for r in rows
            ]
