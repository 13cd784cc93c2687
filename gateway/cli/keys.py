"""``gateway keys``: API keys bound to deployment contexts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gateway.auth.keys import KeyService, NewKey, key_summary
from gateway.cli.common import ConfigOption, config_or_exit, fail, run_with_db
from gateway.clock import now
from gateway.db.session import Sessions
from gateway.policy.revisions import RevisionRepository
from gateway.policy.store import PolicyStore, policy_store

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
    if store.get(context) is None and not _broken(store, context):
        raise fail(_not_served(store, context, settings.policies_dir))

    async def work(sessions: Sessions) -> NewKey | None:
        if store.get(context) is None:  # a broken file: served from its last good revision?
            await store.restore(RevisionRepository(sessions))
        if store.get(context) is None:
            return None
        return await KeyService(sessions).create(context, name, expires_in)

    new = run_with_db(settings, work)
    if new is None:
        raise fail(_not_served(store, context, settings.policies_dir))
    policy = store.get(context)
    if policy is not None and store.served_from(context) == "database":
        typer.echo(
            f"note: context {context!r} is served from its last good revision "
            f"{policy.short_revision} in the database because its file {policy.path} is broken "
            "(the key keeps working once the file is fixed):\n"
            f"{store.file_error(context)}",
            err=True,
        )
    typer.echo(new.secret)
    typer.echo(f"created {new.id} for context {context!r}", err=True)


def _broken(store: PolicyStore, context: str) -> list[Path]:
    """The context's refused file (a file that compiled was named after its context)."""
    return [path for path in store.errors if path.stem == context]


def _not_served(store: PolicyStore, context: str, folder: Path) -> str:
    broken = _broken(store, context)
    if broken:
        return (
            f"no deployment context {context!r} is served: its file is broken and it has no "
            f"stored revision that can serve instead:\n{store.errors[broken[0]]}"
        )
    known = ", ".join(store.contexts) or "none"
    return (
        f"no deployment context {context!r} is served (known: {known}); "
        f"a context is a policy file in {folder}/"
    )


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
