"""``gateway serve`` and ``gateway mock-upstream``."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import typer

from gateway.cli.common import ConfigOption, audit_chain, config_or_exit
from gateway.config import GatewayConfig
from gateway.db import migrate
from gateway.db.session import is_sqlite
from gateway.version import __version__


def serve(
    config: ConfigOption = None,
    host: str = typer.Option("127.0.0.1", help="The address to listen on."),
    port: int = typer.Option(8080, help="The port to listen on."),
    access_log: bool = typer.Option(
        False, help="uvicorn's own request lines too (only while logging.access is off)."
    ),
) -> None:
    """Run the gateway. On the embedded SQLite database, migrations are applied first."""
    import uvicorn  # the server and the app load only for this command, not for every one

    from gateway.app import DEMO_PREFIX, create_app
    from gateway.cli.http_server import GatewayServer, header_timeout_protocol
    from gateway.supervise import Shutdown
    from gateway.telemetry.logs import configure

    settings = config_or_exit(config)
    # the keys made when missing; a key file it cannot use: one line naming it, before anything
    audit_chain(settings, create_keys=True)
    configure(settings.logging)  # JSON lines by default; one access line per request, ours
    if is_sqlite(settings.database_url):
        migrate.upgrade(settings.database_url)
    _say_where_policies_come_from(settings)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    shutdown = Shutdown()
    app = create_app(
        settings, demo_base_url=f"http://{local}:{port}{DEMO_PREFIX}/v1", shutdown=shutdown
    )
    logging.getLogger("gateway").info(
        "OpenAI-compatible API at http://%s:%d/v1; the reviewers' page at http://%s:%d/ui/",
        local,
        port,
        local,
        port,
    )
    server = GatewayServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http=header_timeout_protocol(settings.server.header_timeout),
            access_log=access_log and not settings.logging.access,
            log_config=None,  # the handlers are ours (``configure``): uvicorn adds none
            log_level=settings.logging.level,
            timeout_graceful_shutdown=settings.server.shutdown_grace,  # type: ignore[arg-type]
        ),
        shutdown,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise typer.Exit(3)


def _say_where_policies_come_from(settings: GatewayConfig) -> None:
    from gateway.policy.store import served_folder

    folder = served_folder(settings)
    if folder != settings.policies_dir:
        logging.getLogger("gateway").warning(
            "%s/ holds no policy file: serving the example policies shipped in %s"
            " (put your own in %s/ and they replace them)",
            settings.policies_dir,
            folder,
            settings.policies_dir,
        )


def mock_upstream(
    host: str = typer.Option("127.0.0.1", help="The address to listen on."),
    port: int = typer.Option(9090, help="The port to listen on."),
    script: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Scripted replies and faults (YAML or JSON)."
    ),
    token_delay: float | None = typer.Option(
        None, min=0.0, help="Seconds between streamed chunks."
    ),
    config: ConfigOption = None,
) -> None:
    """Run a scripted OpenAI-compatible backend: the demo, test and benchmark upstream.

    It reads no gateway settings; --config is accepted (and checked) as everywhere else.
    """
    config_or_exit(config)
    from gateway.mock import serve_mock

    serve_mock(host, port, script, token_delay)


def version() -> None:
    """Print the gateway's version."""
    typer.echo(__version__)
