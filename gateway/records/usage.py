"""Usage from the exchange records: requests, tokens, spend, blocks, limits and errors, by day,
model or key, as SQL aggregates (the same on SQLite and PostgreSQL).

Every replica writes to the one database, so usage sums them all. Spend is the sum of each
exchange's ``cost`` (priced as it ended, in ``pricing.currency``: one currency a deployment).
By model is by the alias that served: a fallback alias when one answered (the last of the
record's ``attempts``, when it succeeded), else the alias requested, so each model's spend is
at its own price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Date, String, case, cast, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from gateway.db.models import Exchange
from gateway.db.session import Sessions
from gateway.records.status import Status

By = Literal["day", "model", "key", "context"]
LIMITED = ("rate_limit_exceeded", "budget_exceeded")
ERRORS = (str(Status.UPSTREAM_ERROR), str(Status.GATEWAY_ERROR), str(Status.INCOMPLETE))


@dataclass(frozen=True, slots=True)
class UsageFilter:
    context: str | None = None
    key: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    by: By | None = None


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _served_model(dialect: str) -> ColumnElement[Any]:
    """The alias that served: the last attempt's when it succeeded, else the one requested.
    Written out whole (no bound parameters), so GROUP BY repeats the SELECT's expression."""
    if dialect == "postgresql":  # JSONB: a negative index counts from the end
        alias, outcome = "attempts -> -1 ->> 'alias'", "attempts -> -1 ->> 'outcome'"
    else:  # SQLite's JSON path: ``#-1`` is the last element
        alias = "json_extract(attempts, '$[#-1].alias')"
        outcome = "json_extract(attempts, '$[#-1].outcome')"
    served = f"CASE WHEN {outcome} = 'ok' THEN {alias} END"
    return literal_column(f"coalesce({served}, requested_model)", String)


def _group(by: By | None, dialect: str) -> Any:
    if by == "model":
        return _served_model(dialect)
    if by == "key":
        return Exchange.key_id
    if by == "context":
        return Exchange.context
    if by == "day":
        if dialect == "postgresql":  # the UTC day, whatever the session's time zone
            return cast(func.timezone("UTC", Exchange.received_at), Date)
        return func.date(Exchange.received_at)  # SQLite stores UTC text
    return None


async def usage(sessions: Sessions, flt: UsageFilter) -> list[dict[str, Any]]:
    """One row per group, largest first by requests; one row in all for no grouping."""
    async with sessions() as session:
        dialect = session.get_bind().dialect.name
        group = _group(flt.by, dialect)
        columns: list[Any] = [
            func.count().label("requests"),
            func.coalesce(func.sum(Exchange.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(Exchange.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(Exchange.total_tokens), 0).label("total_tokens"),
            func.coalesce(func.sum(Exchange.cost), 0.0).label("spend"),
            func.max(Exchange.currency).label("currency"),
            _count(Exchange.status == str(Status.OK)).label("ok"),
            _count(Exchange.status == str(Status.BLOCKED)).label("blocked"),
            _count(Exchange.error_type.in_(LIMITED)).label("limited"),
            _count(Exchange.status == str(Status.REJECTED)).label("rejected"),
            _count(Exchange.status.in_(ERRORS)).label("errors"),
        ]
        query = select(*columns)
        if group is not None:
            query = select(group.label("group"), *columns).group_by(group)
        query = _filtered(query, flt).order_by(func.count().desc())
        rows = (await session.execute(query)).mappings().all()
    return [_row(dict(row), flt.by) for row in rows]


def _filtered(query: Any, flt: UsageFilter) -> Any:
    if flt.context is not None:
        query = query.where(Exchange.context == flt.context)
    if flt.key is not None:
        query = query.where(Exchange.key_id == flt.key)
    if flt.since is not None:
        query = query.where(Exchange.received_at >= flt.since)
    if flt.until is not None:
        query = query.where(Exchange.received_at < flt.until)
    return query


def _row(values: dict[str, Any], by: By | None) -> dict[str, Any]:
    if by is not None:
        group = values.pop("group")
        values = {by: None if group is None else str(group), **values}
    values["spend"] = round(float(values["spend"] or 0.0), 6)
    for name in ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "ok"):
        values[name] = int(values[name] or 0)
    for name in ("blocked", "limited", "rejected", "errors"):
        values[name] = int(values[name] or 0)
    return values
