"""The ``gateway`` command."""

from __future__ import annotations

import typer

from gateway.cli import audit, db, detectors, exchanges, export, keys, policy, review, serve, usage

app = typer.Typer(
    name="gateway",
    help="Situate: a policy-governed, OpenAI-compatible model gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("mock-upstream")(serve.mock_upstream)
app.command("version")(serve.version)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(exchanges.app, name="exchanges")
app.command("usage")(usage.command)
app.add_typer(policy.app, name="policy")
app.add_typer(review.app, name="review")
app.add_typer(export.app, name="export")
app.add_typer(detectors.app, name="detectors")
app.add_typer(audit.app, name="audit")


def main() -> None:
    app()
