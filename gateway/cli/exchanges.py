"""``gateway exchanges``: what went through the gateway."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import typer

from gateway.audit.chain import AuditChain
from gateway.cli.common import ConfigOption, audit_chain, config_or_exit, fail, run_with_db
from gateway.db.session import Sessions
from gateway.policy.store import policy_store
from gateway.records.entries import Entry, Imported, describe, import_entries, read_spill
from gateway.records.repository import ExchangeFilter, ExchangeRepository, full, summary
from gateway.records.spool import read_log
from gateway.records.status import Status

app = typer.Typer(help="Exchange records.", no_args_is_help=True)

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """An ISO 8601 time (UTC when no zone is given) or a span back from now: 30m, 2h, 7d."""
    match = _RELATIVE.match(value.strip())
    if match:
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("use an ISO 8601 time or a span such as 30m, 2h, 7d") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("list")
def list_(
    config: ConfigOption = None,
    context: str | None = typer.Option(None, help="Only this deployment context."),
    status: Status | None = typer.Option(None, help="Only exchanges with this status."),
    since: str | None = typer.Option(None, help="ISO time, or a span back from now: 30m, 2h, 7d."),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List exchanges, newest first."""
    settings = config_or_exit(config)
    flt = ExchangeFilter(
        context=context,
        status=status.value if status else None,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    rows, _ = run_with_db(settings, lambda s: ExchangeRepository(s).page(flt))
    for row in rows:
        item = summary(row)
        if as_json:
            typer.echo(json.dumps(item))
            continue
        typer.echo(
            f"{item['id']}  {item['received_at'][:23]}  {item['status']:<19}  "
            f"{item['http_status']}  {item['context'] or '-'}  {item['requested_model'] or '-'}"
            f"{'  stream' if item['stream'] else ''}"
        )


@app.command()
def show(exchange_id: str, config: ConfigOption = None) -> None:
    """Show one exchange in full, as JSON."""
    settings = config_or_exit(config)
    row = run_with_db(settings, lambda s: ExchangeRepository(s).get(exchange_id))
    if row is None:
        raise fail(f"no exchange {exchange_id!r}")
    typer.echo(json.dumps(full(row), indent=2, ensure_ascii=False))


@app.command("import-spill")
def import_spill(
    paths: list[Path] = typer.Argument(..., exists=True, dir_okay=False),
    config: ConfigOption = None,
    from_log: bool = typer.Option(
        False, "--from-log", help="Read the records a gateway's log holds (the spool was full)."
    ),
) -> None:
    """Load records spooled, quarantined or logged while the database could not take them.

    Idempotent: a record whose exchange is in the database already is skipped, so a file can
    be imported twice, and a spool the gateway is replaying can be imported beside it.
    """
    settings = config_or_exit(config)
    refused = 0
    for path in paths:
        entries = read_log(path) if from_log else read_spill(path)
        try:
            done = run_with_db(settings, partial(_import, entries, audit_chain(settings)))
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:  # said in a line: no statement, no parameters (the prompts)
            raise fail(f"importing {path} failed: {describe(exc)}") from None
        typer.echo(
            f"imported {done.inserted} records from {path}; "
            f"skipped {done.skipped} already recorded",
            err=True,
        )
        for exchange_id, why in done.refused:
            typer.echo(f"  refused by the database: {exchange_id}: {why}", err=True)
        refused += len(done.refused)
    if refused:
        raise fail(f"{refused} records were refused (the rest are imported)")


async def _import(entries: list[Entry], chain: AuditChain, sessions: Sessions) -> Imported:
    return await import_entries(sessions, entries, chain)


@app.command()
def purge(
    config: ConfigOption = None,
    dry_run: bool = typer.Option(False, help="Only say what would be erased."),
) -> None:
    """Erase exchange content older than each context's record.retention_days.

    Records stay, with their decisions: only the request and answer bodies are removed. Run it
    daily (a CronJob in Kubernetes).
    """
    settings = config_or_exit(config)
    store = policy_store(settings)
    store.refresh()
    for policy in store.all():
        days = policy.policy.record.retention_days
        if days is None:
            continue
        before = datetime.now(UTC) - timedelta(days=days)
        if dry_run:
            typer.echo(f"{policy.context}: would erase content received before {before:%Y-%m-%d}")
            continue
        erased = run_with_db(settings, _eraser(policy.context, before))
        typer.echo(
            f"{policy.context}: erased the content of {erased} exchanges received before "
            f"{before:%Y-%m-%d %H:%M} ({days} days)"
        )


def _eraser(context: str, before: datetime) -> Callable[[Sessions], Awaitable[int]]:
    return lambda sessions: ExchangeRepository(sessions).erase_content(context, before)
