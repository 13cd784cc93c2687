"""An exchange's rows (``Entry``), as they are written, spooled and read back.

Rows are fitted to their columns before they are written (``fitted``): text PostgreSQL
refuses (NUL, lone surrogates) becomes U+FFFD, and a value longer than its column (a model
name over 200 characters) is cut with a marker saying so; JSON documents are normalised by the
engine's serializer (``gateway.db.safe_json``). ``insert_new`` is idempotent on the exchange
id: what the spool's replay and ``gateway exchanges import-spill`` use.

Every exchange written goes on the audit chain in the same transaction as its rows
(``insert_entries``), so no row is without its entry and no entry without its row; one that
``insert_new`` skips (already recorded) is not chained again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, cast

from sqlalchemy import String, Table, insert, literal, select
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.audit.chain import AuditChain
from gateway.db.models import Exchange, Finding, ReviewItem
from gateway.db.safe_json import clean, clean_text
from gateway.db.session import Sessions
from gateway.policy.decision import Decision

_TIMES = ("received_at", "upstream_started_at", "first_byte_at", "ended_at")
TRUNCATED = "…[truncated]"

_EXCHANGES, _FINDINGS, _REVIEWS = (
    cast(Table, model.__table__) for model in (Exchange, Finding, ReviewItem)
)


def _lengths(table: Table) -> dict[str, int]:
    return {
        c.key: c.type.length
        for c in table.columns
        if isinstance(c.type, String) and c.type.length is not None
    }


_LIMITS = {t.name: _lengths(t) for t in (_EXCHANGES, _FINDINGS, _REVIEWS)}


def _fit(row: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    """The row with its text clean and no value longer than its column."""
    out = dict(row)
    for key, value in row.items():
        if not isinstance(value, str):
            continue
        value = clean_text(value)
        limit = limits.get(key)
        if limit is not None and len(value) > limit:
            value = value[: max(0, limit - len(TRUNCATED))] + TRUNCATED
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One exchange row and the findings and review items that belong to it."""

    row: dict[str, Any]
    findings: list[dict[str, Any]]
    reviews: list[dict[str, Any]] = field(default_factory=list)
    #: the decision behind the row, for observers; not written (the row holds it as JSON)
    decision: Decision | None = field(default=None, compare=False)
    #: the exchange's trace (``gateway.telemetry.spans.ExchangeTrace``), for the tracer; not
    #: written, not spooled
    span: object | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return str(self.row.get("id"))

    def fitted(self) -> Entry:
        """The entry as its columns take it (see the module's docstring)."""
        return Entry(
            _fit(self.row, _LIMITS["exchanges"]),
            [_fit(f, _LIMITS["findings"]) for f in self.findings],
            [_fit(r, _LIMITS["review_items"]) for r in self.reviews],
            self.decision,
            self.span,
        )

    def to_json(self) -> str:
        """One line (no newline in it): non-finite numbers and lone surrogates normalised, so
        any JSON reader reads it back."""
        data = {"exchange": self.row, "findings": self.findings, "reviews": self.reviews}
        try:
            return json.dumps(data, default=str, allow_nan=False)
        except ValueError:
            return json.dumps(clean(data), default=str, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Entry:
        data = json.loads(line)
        row, findings, reviews = data["exchange"], data["findings"], data.get("reviews", [])
        for key in _TIMES:
            if row.get(key):
                row[key] = datetime.fromisoformat(row[key])
        for finding in findings:
            finding["received_at"] = datetime.fromisoformat(finding["received_at"])
        for review in reviews:
            review["created_at"] = datetime.fromisoformat(review["created_at"])
        return cls(row, findings, reviews)


async def insert_entries(
    sessions: Sessions, entries: list[Entry], chain: AuditChain | None = None
) -> None:
    """Write the entries' rows and chain their exchanges, in order, in one transaction (the
    chain's lock is taken last, so it is held for the least time). Without a chain (a test of
    the recorder alone) nothing is chained."""
    async with sessions.begin() as session:
        # Core inserts (executemany), not the ORM's bulk path: the rows are plain already.
        await session.execute(insert(_EXCHANGES), [e.row for e in entries])
        findings = [f for e in entries for f in e.findings]
        if findings:
            await session.execute(insert(_FINDINGS), findings)
        reviews = [r for e in entries for r in e.reviews]
        if reviews:
            await session.execute(insert(_REVIEWS), reviews)
        if chain is not None:
            await chain.append_exchanges(session, [(e.row, e.findings) for e in entries])


async def existing_ids(sessions: Sessions, ids: list[str]) -> set[str]:
    """Which of these exchange ids have a row already."""
    found: set[str] = set()
    async with sessions() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await session.scalars(select(Exchange.id).where(Exchange.id.in_(chunk)))
            found.update(rows)
    return found


async def insert_new(
    sessions: Sessions, entries: list[Entry], chain: AuditChain | None = None
) -> tuple[int, int]:
    """Insert (and chain) the entries whose exchange has no row yet, in order: (inserted,
    skipped)."""
    have = await existing_ids(sessions, [e.id for e in entries])
    seen: set[str] = set()
    fresh = []
    for entry in entries:
        if entry.id not in have and entry.id not in seen:
            seen.add(entry.id)
            fresh.append(entry)
    if fresh:
        await insert_entries(sessions, fresh, chain)
    return len(fresh), len(entries) - len(fresh)


@dataclass(slots=True)
class Imported:
    inserted: int = 0
    skipped: int = 0
    #: (exchange id, the database's reason) for each record it refused on its own
    refused: list[tuple[str, str]] = field(default_factory=list)


async def import_entries(
    sessions: Sessions, entries: list[Entry], chain: AuditChain | None = None, chunk: int = 500
) -> Imported:
    """``insert_new`` in chunks; a chunk the database refuses is written record by record, so
    one bad record costs only itself (it is reported, with the database's reason)."""
    done = Imported()
    for start in range(0, len(entries), chunk):
        part = [e.fitted() for e in entries[start : start + chunk]]
        try:
            inserted, skipped = await insert_new(sessions, part, chain)
        except Exception:  # one by one: which of them is it
            inserted = skipped = 0
            for entry in part:
                try:
                    one, seen = await insert_new(sessions, [entry], chain)
                except Exception as exc:
                    done.refused.append((entry.id, describe(exc)))
                    continue
                inserted, skipped = inserted + one, skipped + seen
        done.inserted += inserted
        done.skipped += skipped
    return done


async def reachable(sessions: Sessions) -> bool:
    """Whether the exchanges table answers (the database is up and has the schema)."""
    try:
        async with sessions() as session:
            await session.execute(select(literal(1)).select_from(_EXCHANGES).limit(0))
    except Exception:  # any driver error: not reachable
        return False
    return True


def describe(exc: BaseException) -> str:
    """A database error in a line, without the statement and its parameters (the prompts)."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        inner = exc.orig
        text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
        return f"{type(exc).__name__} ({type(inner).__name__}): {text}"[:500]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


#: SQLSTATE classes of a database that is slow, busy or going away, not of a bad record:
#: 08 connection, 40 rollback (serialization, deadlock), 53 resources, 55 lock not available,
#: 57 operator intervention (57014: a statement timeout), 58 system error
_TRANSIENT_CLASSES = ("08", "40", "53", "55", "57", "58")


def transient(exc: BaseException) -> bool:
    """Whether a failed write says the database is slow or away (a statement or command
    timeout, a lost connection, a lock): the record is fine, and waits in the spool. Anything
    else (an integrity or data error, a value the driver refuses) is the record's own."""
    if isinstance(exc, TimeoutError | OSError | PoolTimeout | OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or _connection_lost(exc):
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(code, str) and code[:2] in _TRANSIENT_CLASSES
    return False


def _connection_lost(exc: BaseException) -> bool:
    """Whether a driver error came of a lost connection (a socket error or timeout behind it,
    or asyncpg's closed connection). A bare interface error (asyncpg refusing an argument
    client-side, say) is the record's own, not the database's."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, TimeoutError | OSError):
            return True
        if type(inner).__name__ in _LOST_CONNECTION:
            return True
        inner = getattr(inner, "orig", None) or inner.__cause__ or inner.__context__
    return False


#: asyncpg's errors of a connection that went away (matched by name: no driver import here)
_LOST_CONNECTION = frozenset({"ConnectionDoesNotExistError", "ConnectionFailureError"})


def read_spill(path: Path) -> list[Entry]:
    """Read a spill or spool file back into entries ready to insert; a torn last line (the
    process killed mid-write) is skipped."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        entries, _ = read_entries(handle)
    return entries


def read_entries(handle: TextIO, size: float = math.inf) -> tuple[list[Entry], bool]:
    """Up to ``size`` entries from an open spill or spool file (a line that does not parse,
    such as a torn last one, is skipped), and whether the file has ended."""
    entries: list[Entry] = []
    while len(entries) < size:
        line = handle.readline()
        if not line:
            return entries, True
        if not line.strip():
            continue
        try:
            entries.append(Entry.from_json(line))
        except (ValueError, KeyError, TypeError):
            continue
    return entries, False
