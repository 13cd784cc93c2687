"""``gateway exchanges``: what went through the gateway."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import typer

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.cli.common import ConfigOption, audit_chain, config_or_exit, fail, run_with_db
from gateway.db.session import Sessions
from gateway.policy.store import policy_store
from gateway.records.entries import Entry, Imported, describe, import_entries, read_spill
from gateway.records.erasure import Eraser, Who
from gateway.records.repository import ExchangeFilter, ExchangeRepository, full, summary
from gateway.records.retention import Retention, Step
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
    """Erase exchange content each context's policy no longer keeps: past its
    record.retention_days, and what its record.content (none, redacted) no longer allows.

    Records stay, with their decisions: only the request and answer bodies (and the
    decision's text notes) are removed, and each erasure is an event on the audit chain. The
    gateway runs the same pass every audit.purge_seconds; this runs it once (a CronJob).
    """
    settings = config_or_exit(config)
    store = policy_store(settings)
    store.refresh()
    chain = audit_chain(settings)

    async def work(sessions: Sessions) -> list[tuple[Step, int]]:
        retention = Retention(sessions, Eraser(sessions, chain), events.cli_actor())
        steps = await retention.plan(store.all())
        if dry_run:
            return [(step, await retention.count(step)) for step in steps]
        return [(step, await retention.apply(step)) for step in steps]

    for step, count in run_with_db(settings, work):
        when = f", received before {step.before:%Y-%m-%d %H:%M}" if step.before else ""
        what = f"{step.why}{when}"
        verb = "would erase" if dry_run else "erased"
        typer.echo(f"{step.context}: {verb} the content of {count} exchanges ({what})")


@app.command()
def erase(
    exchange: list[str] = typer.Option([], "--exchange", help="An exchange id; repeat."),
    key: str | None = typer.Option(None, "--key", help="Every exchange of this key id (key_…)."),
    reason: str = typer.Option(..., help="Why: the request this serves (on the audit chain)."),
    by: str | None = typer.Option(
        None, help="Who asks (on the audit chain with the operator's user); never a secret."
    ),
    config: ConfigOption = None,
) -> None:
    """Erase the content of exchanges for a person's request: by exchange id, or all of a
    key's. The records stay; the erasure is an event on the audit chain (who, why, which).
    Exits 1 when nothing matched."""
    if bool(exchange) == (key is not None):
        raise fail("name --exchange ID (one or more) or --key KEY_ID, not both", 2)
    settings = config_or_exit(config)
    chain = audit_chain(settings)
    who = Who(events.cli_actor(), reason if by is None else f"{reason} (asked by {by})")

    async def work(sessions: Sessions) -> int:
        eraser = Eraser(sessions, chain)
        return await (eraser.key(key, who) if key is not None else eraser.exchanges(exchange, who))

    erased = run_with_db(settings, work)
    scope = f"key {key}" if key is not None else f"{len(set(exchange))} exchange ids named"
    if not erased:
        raise fail(f"nothing to erase for {scope}: no record with content left")
    typer.echo(f"erased the content of {erased} exchanges ({scope})")
