"""What the commands share: the --config option, loading it, a database session factory,
the audit chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gateway.audit.chain import AuditChain
from gateway.checks.base import Registry
from gateway.checks.classifier import DetectorRuntime
from gateway.checks.registry import default_registry
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.db.migrate import current_revision, head_revision
from gateway.db.session import Sessions, create_engine, create_sessions

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="GATEWAY_CONFIG",
        help="The gateway config file (YAML).",
        exists=True,
        dir_okay=False,
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def config_or_exit(path: Path | None) -> GatewayConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc


def audit_chain(config: GatewayConfig, *, create_keys: bool = False) -> AuditChain:
    """The chain a command appends its events (and imported records) to: the config's, as the
    gateway's. Its keys are made when missing only with ``create_keys`` (``gateway serve``,
    ``gateway audit key``): any other command finding none says so in one line, exit 2,
    rather than commit content under a key no one else has."""
    try:
        return AuditChain.from_config(config.audit, create_keys=create_keys)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc


def command_registry(config: GatewayConfig) -> Registry:
    """The detectors a command compiles policies with, their models in a pool of the command's
    own, sized by the config's ``detectors`` settings (threads start only if a model runs).
    A command waits for every score: a rule's time budget is the request path's, and a
    command's verdict (test, explain, check) is about the policy, not about the machine."""
    from gateway.detectors.catalog import load_model
    from gateway.detectors.pool import PoolSettings
    from gateway.evaluation.runtime import UnhurriedPool

    pool = UnhurriedPool(PoolSettings.of(config.detectors))
    return default_registry(DetectorRuntime(pool, load_model))


@asynccontextmanager
async def database(config: GatewayConfig) -> AsyncIterator[Sessions]:
    """Sessions on a database whose schema is current, or a clear error saying what to run."""
    engine = create_engine(config.database_url)
    try:
        revision = await current_revision(engine)
        if revision != head_revision():
            raise fail(
                f"the database schema is at {revision or 'nothing'}, not {head_revision()}: "
                "run `gateway db upgrade`"
            )
        yield create_sessions(engine)
    finally:
        await engine.dispose()


def run_with_db(config: GatewayConfig, work: Callable[[Sessions], Awaitable[T]]) -> T:
    async def runner() -> T:
        async with database(config) as sessions:
            return await work(sessions)

    return asyncio.run(runner())
