"""Databases made in the test process: migrated by ``gateway.db.migrate`` (the code behind
``gateway db upgrade``), with keys and reviewers made by the services the CLI calls, so a
fixture costs milliseconds instead of a ``python -m gateway`` subprocess each."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gateway.auth.keys import KeyService, NewKey
from gateway.db import migrate
from gateway.db.session import Sessions, create_engine, create_sessions
from gateway.review.reviewers import ReviewerService, Role

T = TypeVar("T")

POSTGRES_ENV = "GATEWAY_TEST_POSTGRES_URL"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_sql(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def postgres_database(base: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``base``, dropped afterwards: its URL."""
    in_a_thread(lambda: asyncio.run(_admin_sql(base, f'CREATE DATABASE "{name}"')))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        in_a_thread(lambda: asyncio.run(_admin_sql(base, drop)))


@contextmanager
def empty_database_of(dialect: str, folder: Path, label: str) -> Iterator[str]:
    """An empty database of a test's own on ``dialect`` (``sqlite`` in ``folder``, or a new
    PostgreSQL database, dropped afterwards): its URL. PostgreSQL skips, saying why, without
    GATEWAY_TEST_POSTGRES_URL."""
    if dialect == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / f'{label}.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    with postgres_database(base, f"situate_{label}_{secrets.token_hex(4)}") as url:
        yield url


def in_a_thread(work: Callable[[], T]) -> T:
    """``work`` on a thread of its own, where no event loop runs: Alembic and ``asyncio.run``
    refuse to start inside one, and Playwright's sync API keeps one running in the test's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def upgrade(url: str) -> str:
    """The database at ``url`` migrated to head."""
    in_a_thread(lambda: migrate.upgrade(url))
    return url


@asynccontextmanager
async def sessions_on(url: str) -> AsyncIterator[Sessions]:
    """Sessions on ``url`` for one event loop, the engine disposed afterwards."""
    engine = create_engine(url)
    try:
        yield create_sessions(engine)
    finally:
        await engine.dispose()


def run_on(url: str, work: Callable[[Sessions], Awaitable[T]]) -> T:
    """``work`` on the database at ``url``, from synchronous test code."""

    async def runner() -> T:
        async with sessions_on(url) as sessions:
            return await work(sessions)

    return in_a_thread(lambda: asyncio.run(runner()))


def make_key(url: str, context: str, name: str = "tests", expires_in: int | None = None) -> str:
    """A new API key for ``context``, as ``gateway keys create`` makes it; the secret."""

    async def work(sessions: Sessions) -> NewKey:
        return await KeyService(sessions).create(context, name, expires_in)

    return run_on(url, work).secret


def make_keys(url: str, contexts: tuple[str, ...] | list[str]) -> dict[str, str]:
    """A key per context, on one engine."""

    async def work(sessions: Sessions) -> dict[str, str]:
        keys = KeyService(sessions)
        return {context: (await keys.create(context, "tests")).secret for context in contexts}

    return run_on(url, work)


def make_reviewer(
    url: str,
    name: str,
    role: Role = "reviewer",
    queues: tuple[tuple[str, str], ...] = (),
    *,
    kind: str = "human",
) -> tuple[str, str]:
    """A reviewer as ``gateway review add-reviewer`` (and ``assign``) makes one, with the
    same organisation, locale and languages the tests' reviewers always had: (id, token)."""

    async def work(sessions: Sessions) -> tuple[str, str]:
        service = ReviewerService(sessions)
        reviewer, token = await service.create(
            name,
            role,
            kind=kind,
            organisation="Acme Labelling",
            locale="de-DE",
            languages=["de", "en"],
        )
        for context, queue in queues:
            await service.assign(reviewer.id, context, queue)
        return reviewer.id, token

    return run_on(url, work)
