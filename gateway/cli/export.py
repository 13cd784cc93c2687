"""``gateway export preferences``: reviewed exchanges as preference data, with provenance."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from gateway.audit import events
from gateway.cli.common import ConfigOption, audit_chain, config_or_exit, fail, run_with_db
from gateway.cli.exchanges import parse_since
from gateway.export.formats import FORMATS
from gateway.export.rows import ExportFilter
from gateway.policy.store import policy_store
from gateway.review.exporting import Exporter, run_export

app = typer.Typer(help="Exports.", no_args_is_help=True)


@app.command()
def preferences(
    format: str = typer.Option(..., "--format", help="trl, openai, hh or kto"),
    out: Path = typer.Option(..., "--out", file_okay=False, help="The folder to write."),
    context: str | None = typer.Option(None),
    queue: str | None = typer.Option(None),
    since: str | None = typer.Option(None, help="ISO time or a span back: 7d"),
    until: str | None = typer.Option(None, help="ISO time or a span back"),
    by: str = typer.Option("cli", "--by", help="Who is exporting (recorded)."),
    include_partial: bool = typer.Option(
        False,
        "--include-partial",
        help="Also export judgments on unfinished items (below their queue's"
        " reviewers_per_item, or with a lead), marked partial in provenance.jsonl.",
    ),
    allow_empty: bool = typer.Option(
        False, "--allow-empty", help="Exit 0 even when nothing matched (it is still said)."
    ),
    config: ConfigOption = None,
) -> None:
    """Write data.jsonl, provenance.jsonl and a dataset card (README.md) into --out.

    When nothing matched, the folder is still written (the card says why) and the command
    says why on stderr and exits 1, unless --allow-empty."""
    if format not in FORMATS:
        raise fail(f"--format is one of {', '.join(FORMATS)}")
    settings = config_or_exit(config)
    store = policy_store(settings)
    store.refresh()
    flt = ExportFilter(
        format=format,
        context=context,
        queue=queue,
        since=parse_since(since) if since else None,
        until=parse_since(until) if until else None,
        include_partial=include_partial,
    )
    out.mkdir(parents=True, exist_ok=True)
    who = Exporter(by, events.cli_actor(), audit_chain(settings))
    summary = run_with_db(settings, lambda s: run_export(s, store, flt, out, who))
    typer.echo(json.dumps(asdict(summary), default=str))
    unfinished = summary.left_out_reasons["unfinished"]
    if unfinished["judgments"] and summary.nothing_exported is None:
        typer.echo(
            f"note: {unfinished['judgments']} judgments on {unfinished['items']} unfinished"
            " items were left out (see the card); --include-partial exports them",
            err=True,
        )
    for note in summary.left_out_notes if summary.nothing_exported is None else ():
        typer.echo(f"note: left out {note} (see the card)", err=True)
    if summary.nothing_exported is not None:
        typer.echo(f"nothing exported: {summary.nothing_exported}.", err=True)
        typer.echo(f"the card in {out / 'README.md'} says the same", err=True)
        if not allow_empty:
            raise typer.Exit(1)
