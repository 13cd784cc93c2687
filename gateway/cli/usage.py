"""``gateway usage``: requests, tokens, spend, blocks, limits and errors, from the records."""

from __future__ import annotations

import json

import typer

from gateway.cli.common import ConfigOption, config_or_exit, fail, run_with_db
from gateway.cli.exchanges import parse_since
from gateway.records.usage import By, UsageFilter, usage

COLUMNS = (
    "requests",
    "total_tokens",
    "spend",
    "ok",
    "blocked",
    "limited",
    "rejected",
    "errors",
)


def command(
    config: ConfigOption = None,
    context: str | None = typer.Option(None, help="Only this deployment context."),
    key: str | None = typer.Option(None, help="Only this key (its id, key_…)."),
    since: str | None = typer.Option(None, help="ISO time or date, or a span back: 30m, 2h, 7d."),
    by: str | None = typer.Option(None, help="Group by day, model, key or context."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Usage per key or context, from every replica's records (docs/limits.md)."""
    settings = config_or_exit(config)
    if by is not None and by not in ("day", "model", "key", "context"):
        raise fail(f"--by must be day, model, key or context, not {by!r}")
    try:
        start = parse_since(since) if since else None
    except typer.BadParameter as exc:
        raise fail(str(exc)) from exc
    grouped: By | None = by  # type: ignore[assignment]  # checked above
    flt = UsageFilter(context=context, key=key, since=start, by=grouped)
    rows = run_with_db(settings, lambda s: usage(s, flt))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    head = ([by] if by else []) + ["currency", *COLUMNS]
    lines = [[_cell(row.get(name)) for name in head] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for line in lines:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
