"""``gateway keys``: API keys bound to deployment contexts."""

from __future__ import annotations

import json

import typer

from gateway.auth.keys import KeyService, key_summary
from gateway.cli.common import ConfigOption, config_or_exit, fail, run_with_db
from gateway.policy.store import policy_store
from gateway.records.log import now

app = typer.Typer(help="API keys for applications.", no_args_is_help=True)


@app.command()
def create(
    context: str = typer.Option(..., "--context", help="The deployment context the key serves."),
    name: str = typer.Option(..., "--name", help="A label saying who or what uses the key."),
    expires_in: int | None = typer.Option(None, "--expires-in", min=1, help="Days until expiry."),
    config: ConfigOption = None,
) -> None:
    """Create a key. Prints the key, and only the key, on stdout: it is not shown again."""
    settings = config_or_exit(config)
    store = policy_store(settings)
    store.refresh()
    if store.get(context) is None:
        known = ", ".join(store.contexts) or "none"
        raise fail(
            f"no deployment context {context!r} is served (known: {known}); "
            f"a context is a policy file in {settings.policies_dir}/"
        )
    new = run_with_db(settings, lambda s: KeyService(s).create(context, name, expires_in))
    typer.echo(new.secret)
    typer.echo(f"created {new.id} for context {context!r}", err=True)


@app.command("list")
def list_(
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List keys (never the keys themselves)."""
    settings = config_or_exit(config)
    rows = run_with_db(settings, lambda s: KeyService(s).list())
    current = now()
    for row in rows:
        item = key_summary(row, current)
        if as_json:
            typer.echo(json.dumps(item))
        else:
            typer.echo(
                f"{item['id']}  {item['display']}  {item['state']:<8}  "
                f"{item['context']}  {item['name']}"
            )


@app.command()
def revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke a key. Gateways stop accepting it within their key cache time (5 s by default)."""
    settings = config_or_exit(config)
    if not run_with_db(settings, lambda s: KeyService(s).revoke(key_id)):
        raise fail(f"no active key {key_id!r}")
    typer.echo(f"revoked {key_id}", err=True)
