"""``gateway audit key | checkpoint | verify-receipt``: signed checkpoints and receipts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.audit.checkpoints import Checkpointer, Stored
from gateway.audit.keys import HMAC_FILE, SIGNING_FILE
from gateway.audit.note import vkey
from gateway.audit.receipt import ReceiptError, verify_receipt
from gateway.cli.common import ConfigOption, audit_chain, config_or_exit, fail, run_with_db
from gateway.db.session import Sessions

KEY_HELP = "The operator's verifier key (name+id+key), as `gateway audit key` prints it."
ORIGIN_HELP = "The checkpoints' origin the operator publishes (audit.origin); checked if given."


def key(config_path: ConfigOption = None) -> None:
    """Print the verifier key of this gateway's checkpoints, to publish: with it anyone checks
    a checkpoint or a caller's receipt offline. Missing keys are made (and it says so)."""
    config = config_or_exit(config_path)
    folder = config.audit.keys_dir
    missing = [name for name in (HMAC_FILE, SIGNING_FILE) if not (folder / name).exists()]
    keys = audit_chain(config, create_keys=True).keys
    if missing:
        typer.echo(f"made {' and '.join(missing)} in {folder}: new keys, back them up", err=True)
    typer.echo(vkey(keys.name, keys.public_key))


def checkpoint(config_path: ConfigOption = None) -> None:
    """Sign a checkpoint of this replica's chain now, store it, write its file and print it."""
    config = config_or_exit(config_path)
    chain = audit_chain(config)

    async def work(sessions: Sessions) -> Stored | None:
        return await Checkpointer(chain, sessions, config.audit).checkpoint()

    stored = run_with_db(config, work)
    if stored is None:
        raise fail(f"audit chain {chain.chain_id!r} has no entries yet: nothing to sign")
    typer.echo(stored.note, nl=False)


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(f"{path}: not a receipt (JSON from GET /v1/receipts/{{id}}): {exc}") from exc
    if not isinstance(value, dict):
        raise fail(f"{path}: not a receipt (a JSON object)")
    return value


def verify_receipt_command(
    file: Annotated[Path, typer.Argument(help="The receipt, as GET /v1/receipts/{id} gave it.")],
    key_text: Annotated[str, typer.Option("--key", help=KEY_HELP)],
    origin: Annotated[str | None, typer.Option("--origin", help=ORIGIN_HELP)] = None,
) -> None:
    """Check a caller's receipt offline, with the verifier key alone: exit 1 with the reason
    when it does not check out."""
    try:
        verified = verify_receipt(_read(file), key_text, origin=origin)
    except ReceiptError as exc:
        raise fail(f"{file}: the receipt does not check out: {exc}") from exc
    signer = key_text.split("+")[0]
    typer.echo(
        f"ok: request {verified.request_id} is entry {verified.seq} of chain {verified.chain}, "
        f"under a checkpoint of {verified.checkpoint.size} entries signed by {signer}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``gateway audit``."""
    app.command("key")(key)
    app.command("checkpoint")(checkpoint)
    app.command("verify-receipt")(verify_receipt_command)
