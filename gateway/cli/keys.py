"""``gateway keys``: API keys bound to deployment contexts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gateway.audit import events
from gateway.auth.keys import KeyService, NewKey, key_summary, read_limits
from gateway.cli.common import ConfigOption, audit_chain, config_or_exit, fail, run_with_db
from gateway.clock import now
from gateway.db.session import Sessions
from gateway.policy.revisions import RevisionRepository
from gateway.policy.schema import RateLimits
from gateway.policy.store import PolicyStore, policy_store

app = typer.Typer(help="API keys for applications.", no_args_is_help=True)

RPM = typer.Option(None, "--rpm", min=1, help="Requests per minute.")
TPM = typer.Option(None, "--tpm", min=1, help="Tokens per minute.")
TPD = typer.Option(None, "--tpd", min=1, help="Tokens per day (a budget).")
STREAMS = typer.Option(None, "--streams", min=1, help="Concurrent streams.")
SPEND_DAY = typer.Option(None, "--spend-day", min=0.000001, help="Spend per day (pricing).")
SPEND_MONTH = typer.Option(None, "--spend-month", min=0.000001, help="Spend per month.")


def _limits(
    rpm: int | None,
    tpm: int | None,
    tpd: int | None,
    streams: int | None,
    spend_day: float | None,
    spend_month: float | None,
) -> RateLimits:
    return RateLimits(
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        tokens_per_day=tpd,
        concurrent_streams=streams,
        spend_per_day=spend_day,
        spend_per_month=spend_month,
    )


@app.command()
def create(
    context: str = typer.Option(..., "--context", help="The deployment context the key serves."),
    name: str = typer.Option(..., "--name", help="A label saying who or what uses the key."),
    expires_in: int | None = typer.Option(None, "--expires-in", min=1, help="Days until expiry."),
    rpm: int | None = RPM,
    tpm: int | None = TPM,
    tpd: int | None = TPD,
    streams: int | None = STREAMS,
    spend_day: float | None = SPEND_DAY,
    spend_month: float | None = SPEND_MONTH,
    config: ConfigOption = None,
) -> None:
    """Create a key. Prints the key, and only the key, on stdout: it is not shown again.
    The limit options set the key's own limits (docs/limits.md); the context's apply too."""
    settings = config_or_exit(config)
    limits = _limits(rpm, tpm, tpd, streams, spend_day, spend_month)
    store = policy_store(settings)
    store.refresh()
    if store.get(context) is None and not _broken(store, context):
        raise fail(_not_served(store, context, settings.policies_dir))

    async def work(sessions: Sessions) -> NewKey | None:
        if store.get(context) is None:  # a broken file: served from its last good revision?
            await store.restore(RevisionRepository(sessions))
        if store.get(context) is None:
            return None
        keys = KeyService(sessions, audit_chain(settings))
        return await keys.create(context, name, expires_in, limits, actor=events.cli_actor())

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
            limits = read_limits(item["limits"])  # in the fields' order, whatever JSON kept
            shown = (
                "  " + " ".join(f"{k}={v}" for k, v in limits.model_dump(exclude_none=True).items())
                if limits is not None
                else ""
            )
            typer.echo(
                f"{item['id']}  {item['display']}  {item['state']:<8}  "
                f"{item['context']}  {item['name']}{shown}"
            )


@app.command()
def revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke a key. Gateways stop accepting it within their key cache time (5 s by default)."""
    settings = config_or_exit(config)
    chain = audit_chain(settings)
    actor = events.cli_actor()
    if not run_with_db(settings, lambda s: KeyService(s, chain).revoke(key_id, actor=actor)):
        raise fail(f"no active key {key_id!r}")
    typer.echo(f"revoked {key_id}", err=True)


@app.command()
def limits(
    key_id: str,
    rpm: int | None = RPM,
    tpm: int | None = TPM,
    tpd: int | None = TPD,
    streams: int | None = STREAMS,
    spend_day: float | None = SPEND_DAY,
    spend_month: float | None = SPEND_MONTH,
    clear: bool = typer.Option(False, "--clear", help="Remove every limit of the key's own."),
    config: ConfigOption = None,
) -> None:
    """Set a key's own limits: the options given replace the ones stored; --clear removes all.
    Gateways apply the change within their key cache time."""
    settings = config_or_exit(config)
    wanted = _limits(rpm, tpm, tpd, streams, spend_day, spend_month)
    if wanted.empty and not clear:
        raise fail(
            "give a limit to set (--rpm, --tpm, --tpd, --streams, --spend-day, --spend-month) "
            "or --clear"
        )

    async def work(sessions: Sessions) -> RateLimits | bool | None:
        keys = KeyService(sessions, audit_chain(settings))
        found = next((k for k in await keys.list() if k.id == key_id), None)
        if found is None:
            return False
        stored = found.limits or {}
        merged = (
            None
            if clear
            else RateLimits.model_validate({**stored, **wanted.model_dump(exclude_none=True)})
        )
        await keys.set_limits(key_id, merged, actor=events.cli_actor())
        return merged

    result = run_with_db(settings, work)
    if result is False:
        raise fail(f"no key {key_id!r}")
    shown = result.model_dump(exclude_none=True) if isinstance(result, RateLimits) else {}
    typer.echo(json.dumps({"id": key_id, "limits": shown or None}))
