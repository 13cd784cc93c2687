"""Engines and session factories for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.db.safe_json import dumps


class Sessions(Protocol):
    """Where the services get their sessions: the engine's factory (``create_sessions``), or
    one unit of work's session (``InSession``). ``begin()`` is a transaction of the service's
    own, or its part of the caller's."""

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]: ...


class InSession:
    """``Sessions`` that hands out one session, inside its transaction: services built on it
    do their work in the caller's unit of work, which commits once or rolls back everything
    (the request's: ``gateway.deps.SessionDep``). Their own ``begin()`` neither commits nor
    rolls back: an error they raise reaches the owner of the unit, which rolls it back."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._lend()

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._lend()

    @asynccontextmanager
    async def _lend(self) -> AsyncIterator[AsyncSession]:
        yield self.session


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction has committed (never if it rolls back)."""

    def committed(_session: Any) -> None:
        action()

    event.listen(session.sync_session, "after_commit", committed, once=True)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    """An embedded database lives in a file whose folder may not exist yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers (the CLI, the admin API) run while the recorder writes.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return pragmas


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> AsyncEngine:
    """An engine for ``url``; the pool sizes apply to a server database (SQLite has none),
    the gateway's from ``database.pool_size`` and ``database.max_overflow`` in its config.

    The gateway bounds every database call (``database.connect_timeout`` and
    ``statement_timeout``; the commands, whose exports and purges may run long, do not):
    opening a connection, and waiting for a pooled one, by ``connect_timeout``; a statement
    by ``statement_timeout`` both on the client's side (asyncpg's ``command_timeout``, which
    holds even when the server is frozen) and on the server's (PostgreSQL's
    ``statement_timeout``); SQLite waits that long at most for a lock. JSON is stored
    normalised (``gateway.db.safe_json``).
    """
    ensure_sqlite_dir(url)
    if is_sqlite(url):
        busy = statement_timeout if statement_timeout is not None else 5.0
        engine = create_async_engine(url, json_serializer=dumps, connect_args={"timeout": busy})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(int(busy * 1000)))
        return engine
    connect: dict[str, Any] = {}
    if connect_timeout is not None:
        connect["timeout"] = connect_timeout
    if statement_timeout is not None:
        connect["command_timeout"] = statement_timeout
        connect["server_settings"] = {"statement_timeout": str(int(statement_timeout * 1000))}
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=connect_timeout if connect_timeout is not None else 30.0,
        json_serializer=dumps,
        connect_args=connect,
    )


def create_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
