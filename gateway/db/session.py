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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the CLI, the admin API) run while the recorder writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An engine for ``url``; the pool sizes apply to a server database (SQLite has none),
    the gateway's from ``database.pool_size`` and ``database.max_overflow`` in its config."""
    ensure_sqlite_dir(url)
    if is_sqlite(url):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


def create_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
