"""Migration drift, on SQLite and on PostgreSQL: after ``alembic upgrade head`` the schema is
exactly what ``gateway.db.models`` declares (autogenerate finds nothing to add, drop or alter),
and the migrations go down to nothing and back up to the same schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import gateway.db.models  # noqa: F401  (registers the tables)
from gateway.db import migrate
from gateway.db.base import Base
from gateway.db.session import create_engine
from tests.databases import empty_database_of


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own, with nothing in it yet (never the shared one)."""
    with empty_database_of(request.param, tmp_path, "drift") as url:
        yield url


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def schema(url: str) -> tuple[list[Any], set[str]]:
    """What autogenerate would change, and the tables there are."""

    async def read() -> tuple[list[Any], set[str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return (
                    await connection.run_sync(_differences),
                    await connection.run_sync(_tables),
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_migrated_schema_is_the_models(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    differences, tables = schema(empty_database)
    assert differences == []
    assert tables == {*Base.metadata.tables, "alembic_version"}


def test_down_to_nothing_one_step_at_a_time_and_back_up(empty_database: str) -> None:
    """Step by step, so a downgrade that only works all the way down is caught too."""
    config = migrate.alembic_config(empty_database)
    steps = len(list(ScriptDirectory.from_config(config).walk_revisions()))
    assert steps >= 4
    migrate.upgrade(empty_database)
    for _ in range(steps):
        command.downgrade(config, "-1")
    differences, tables = schema(empty_database)
    assert tables <= {"alembic_version"}  # every table of the models is gone
    assert differences  # and autogenerate would make them all again
    for _ in range(steps):
        command.upgrade(config, "+1")
    differences, tables = schema(empty_database)
    assert differences == [] and tables == {*Base.metadata.tables, "alembic_version"}
