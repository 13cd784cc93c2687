"""``gateway audit verify``: recompute the chains and report the first broken place."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import typer

from gateway.audit.checkpoint_files import SUFFIX
from gateway.audit.keys import AuditKeyError
from gateway.audit.note import NoteError, Verifier
from gateway.audit.verify import (
    NoteSource,
    ReceiptSource,
    Report,
    Verification,
    VerifyUsageError,
    verify,
)
from gateway.cli.common import ConfigOption, config_or_exit, database, fail
from gateway.config import GatewayConfig
from gateway.config.observe import AuditConfig

CHECKPOINT_HELP = "A signed checkpoint kept outside the gateway (a file); repeat for more."
FILES_HELP = ("Leave out the checkpoint files the gateway wrote (audit.checkpoint_dir/<chain>/"
              "*.checkpoint), read by default.")
RECEIPT_HELP = "A caller's receipt (JSON from GET /v1/receipts/{id}); repeat for more."
KEY_HELP = (
    "The verifier key (name+id+key) the checkpoints must be signed with; default: the one "
    "of the signing key in audit.keys_dir."
)


class _Progress:
    """Entries done / total and the rate, on stderr: one line redrawn on a terminal, a line
    every few seconds otherwise."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = 0.0
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 5.0

    def __call__(self, done: int, total: int) -> None:
        moment = time.monotonic()
        if moment - self.shown < self.every and done < total:
            return
        self.shown = moment
        rate = done / max(moment - self.started, 1e-9)
        line = f"verified {done:,} / {total:,} entries ({rate:,.0f}/s)"
        typer.echo(("\r" + line) if self.tty else line, err=True, nl=not self.tty)

    def end(self) -> None:
        if self.tty and self.shown:
            typer.echo("", err=True)


def _notes(paths: list[Path]) -> list[NoteSource]:
    found: dict[str, NoteSource] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{path}: cannot read the checkpoint: {exc}", 2) from exc
        found.setdefault(text, NoteSource(str(path), text))  # latest is also <size>
    return list(found.values())


def _written(audit: AuditConfig, chain: str | None) -> list[Path]:
    """The checkpoint files the gateway wrote, ``audit.checkpoint_dir/<chain>/*.checkpoint``:
    every chain's, or the one asked for."""
    root = audit.checkpoint_dir
    folders = [root / chain] if chain is not None else sorted(
        path for path in root.glob("*") if path.is_dir())
    return sorted(path for folder in folders for path in folder.glob("*" + SUFFIX))


def _receipts(paths: list[Path]) -> list[ReceiptSource]:
    found = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise fail(f"{path}: cannot read the receipt as JSON: {exc}", 2) from exc
        if not isinstance(data, dict):
            raise fail(f"{path}: a receipt is a JSON object (GET /v1/receipts/{{id}})", 2)
        found.append(ReceiptSource(str(path), data))
    return found


def _key(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        Verifier.parse(text)
    except NoteError as exc:
        raise fail(f"--key: {exc}", 2) from exc
    return text.strip()


async def _run(settings: GatewayConfig, job: Verification, progress: _Progress) -> Report:
    async with database(settings):  # the schema is current, or a clear error
        pass
    return await verify(job, progress)


def _say(report: Report) -> None:
    for chain in report.chains:
        state = "ok" if not chain.problems else f"BROKEN ({len(chain.problems)} found)"
        typer.echo(f"chain {chain.chain}: {chain.entries:,} entries ({chain.exchanges:,} "
                   f"exchanges, {chain.events:,} events), {chain.checkpoints} checkpoints: "
                   f"{state}")
    rate = report.entries / report.seconds if report.seconds > 0 else 0.0
    typer.echo(f"verified {report.entries:,} entries in {report.seconds:.1f} s "
               f"({rate:,.0f}/s)")
    for problem in report.broken():
        typer.echo(f"first broken place: {problem.say()}")
    if report.ok:
        typer.echo("the record is whole: every entry, link, commitment and checkpoint checks")


def verify_command(
    config: ConfigOption = None,
    chain: str | None = typer.Option(None, "--chain", help="Only this chain (default: all)."),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", help=CHECKPOINT_HELP, exists=True, dir_okay=False
    ),
    receipt: list[Path] = typer.Option(
        [], "--receipt", help=RECEIPT_HELP, exists=True, dir_okay=False
    ),
    key: str | None = typer.Option(None, "--key", help=KEY_HELP),
    no_files: bool = typer.Option(False, "--no-checkpoint-files", help=FILES_HELP),
    as_json: bool = typer.Option(False, "--json", help="The report as one JSON object."),
) -> None:
    """Recompute every chain from the tables and report the first broken place; check
    checkpoints and receipts kept outside against the log. Exit 0 when the record is whole,
    1 when something was changed, 2 when it cannot be checked."""
    settings = config_or_exit(config)
    written = [] if no_files else _written(settings.audit, chain)
    job = Verification(settings.database_url, settings.audit, chain,
                       _notes([*checkpoint, *written]),
                       _key(key), _receipts(receipt))
    progress = _Progress()
    try:
        report = asyncio.run(_run(settings, job, progress))
    except (VerifyUsageError, AuditKeyError) as exc:
        raise fail(str(exc), 2) from exc
    finally:
        progress.end()
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _say(report)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``gateway audit``."""
    app.command("verify")(verify_command)
