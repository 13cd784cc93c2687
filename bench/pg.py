"""What the PostgreSQL benchmarks share: a throwaway database built by the migrations, filled
by SQL, and a percentile."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from gateway.db import migrate


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(statements: list[str]) -> AsyncIterator[str]:
    """A new database (GATEWAY_BENCH_POSTGRES_URL's server), migrated and filled; dropped after."""
    base = os.environ.get(
        "GATEWAY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    name = f"situate_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_dsn(base))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        print(f"filling {name}:")
        connection = await asyncpg.connect(_dsn(url))
        try:
            for statement in statements:
                started = time.perf_counter()
                await connection.execute(statement)
                words = " ".join(statement.split()[:3])
                print(f"  {words} in {time.perf_counter() - started:.1f} s")
        finally:
            await connection.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
