"""``gateway db``: migrations, the only way any schema is created."""

from __future__ import annotations

import asyncio

import typer

from gateway.cli.common import ConfigOption, config_or_exit
from gateway.db import migrate
from gateway.db.session import create_engine

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command()
def upgrade(
    config: ConfigOption = None,
    revision: str = typer.Option("head", help="The revision to upgrade to."),
) -> None:
    """Apply the migrations to the configured database."""
    settings = config_or_exit(config)
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}", err=True)


@app.command()
def current(config: ConfigOption = None) -> None:
    """Print the schema revision the database is at."""
    settings = config_or_exit(config)

    async def read() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(asyncio.run(read()) or "none")
