"""``gateway review``: reviewer accounts, queue assignment, queue status, candidate tests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar, cast

import typer
import yaml

from gateway.audit import events
from gateway.cli.common import ConfigOption, audit_chain, config_or_exit, fail, run_with_db
from gateway.errors import NotFound
from gateway.policy.store import policy_store
from gateway.review.data import ReviewData
from gateway.review.queue import QueueService
from gateway.review.reviewers import ReviewerIdentity, ReviewerService, Role
from gateway.review.states import ReviewerKind, ReviewerRole

app = typer.Typer(
    help="Human review: reviewers, queues, candidate test cases.", no_args_is_help=True
)
ROLES = tuple(role.value for role in ReviewerRole)  # plain words: the usage error quotes them
T = TypeVar("T")
SEES_ALL = ReviewerIdentity("cli", "cli", ReviewerRole.ADMIN, ReviewerKind.HUMAN, frozenset())


@app.command("add-reviewer")
def add_reviewer(
    name: str = typer.Option(..., help="The reviewer's name (never exported)."),
    role: str = typer.Option("reviewer", help="reviewer, lead or admin"),
    kind: str = typer.Option("human", help="human, or model for an automated judge"),
    organisation: str | None = typer.Option(None),
    locale: str | None = typer.Option(None, help="e.g. de-DE"),
    language: list[str] = typer.Option([], help="A language the reviewer reads; repeat."),
    config: ConfigOption = None,
) -> None:
    """Create a reviewer. Prints their token, and only the token: it is not shown again."""
    if role not in ROLES or kind not in (ReviewerKind.HUMAN, ReviewerKind.MODEL):
        raise fail(f"role is one of {ROLES}; kind is human or model")
    settings = config_or_exit(config)
    reviewer, token = run_with_db(
        settings,
        lambda s: ReviewerService(s, audit_chain(settings)).create(
            name,
            cast(Role, role),
            kind=kind,
            organisation=organisation,
            locale=locale,
            languages=language,
            actor=events.cli_actor(),
        ),
    )
    typer.echo(token)
    typer.echo(f"created {reviewer.id} ({reviewer.pseudonym}, {role}, {kind})", err=True)


@app.command()
def assign(
    reviewer_id: str,
    context: str = typer.Option(...),
    queue: str = typer.Option(...),
    config: ConfigOption = None,
) -> None:
    """Let a reviewer work a queue of a context."""
    settings = config_or_exit(config)
    store = policy_store(settings)
    store.refresh()
    policy = store.get(context)
    if policy is None or queue not in (
        *policy.policy.review.queues,
        "review",
        policy.policy.review.default_queue,
    ):
        raise fail(f"context {context!r} has no review queue {queue!r}")
    try:
        run_with_db(
            settings,
            lambda s: ReviewerService(s, audit_chain(settings)).assign(
                reviewer_id, context, queue, actor=events.cli_actor()
            ),
        )
    except LookupError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"{reviewer_id} may now work {context}/{queue}", err=True)


@app.command("reviewers")
def reviewers(config: ConfigOption = None) -> None:
    """List reviewers and their queues (never their tokens)."""
    settings = config_or_exit(config)
    for reviewer, queues in run_with_db(settings, lambda s: ReviewerService(s).list()):
        where = ", ".join(f"{c}/{q}" for c, q in queues) or "no queues"
        disabled = (
            f"  disabled {reviewer.disabled_at:%Y-%m-%d %H:%M}" if reviewer.disabled_at else ""
        )
        typer.echo(
            f"{reviewer.id}  {reviewer.pseudonym}  {reviewer.role:<8}  {reviewer.kind:<5}"
            f"  {reviewer.name}  [{where}]{disabled}"
        )


@app.command()
def status(config: ConfigOption = None, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every queue's backlog: waiting, claimed, escalated, done today."""
    settings = config_or_exit(config)
    rows = run_with_db(settings, lambda s: QueueService(s).status(SEES_ALL))
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row.as_dict()))
        else:
            typer.echo(
                f"{row.context}/{row.queue}: {row.waiting} waiting, {row.claimed} claimed,"
                f" {row.escalated} escalated, {row.done_today} done today"
            )


@app.command()
def candidates(
    context: str = typer.Option(...),
    out: Path | None = typer.Option(None, help="Write a test-case file here."),
    config: ConfigOption = None,
) -> None:
    """Reviewers' verdicts as test cases for `gateway policy test`: each fails on the policy
    as it is, and passes once the policy is changed to agree with the reviewer."""
    settings = config_or_exit(config)
    store = policy_store(settings)
    store.refresh()
    found = run_with_db(settings, lambda s: ReviewData(s, store).candidate_cases(SEES_ALL, context))
    for case in found.passing:
        typer.echo(f"not a case, passes already: {case['name']}: {case['why']}", err=True)
    text = yaml.safe_dump({"cases": found.cases}, sort_keys=False, allow_unicode=True)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"{len(found.cases)} candidate cases written to {out}", err=True)


def _lifecycle(config: ConfigOption, work: Callable[[ReviewerService], Awaitable[T]]) -> T:
    """Run one change to a reviewer account; an unknown reviewer or queue is a clear error."""
    settings = config_or_exit(config)
    try:
        return run_with_db(settings, lambda s: work(ReviewerService(s, audit_chain(settings))))
    except NotFound as exc:
        raise fail(exc.message) from exc


@app.command()
def unassign(
    reviewer_id: str,
    context: str = typer.Option(...),
    queue: str = typer.Option(...),
    config: ConfigOption = None,
) -> None:
    """Take a queue away from a reviewer; their live claims in it go back to the queue."""
    _lifecycle(config, lambda r: r.unassign(reviewer_id, context, queue, actor=events.cli_actor()))
    typer.echo(f"{reviewer_id} no longer works {context}/{queue}", err=True)


@app.command()
def disable(reviewer_id: str, config: ConfigOption = None) -> None:
    """Stop a reviewer at once: no sign-in, API or claims; sessions end, claims are freed.
    Their judgments stay and still count in exports."""
    _lifecycle(config, lambda r: r.disable(reviewer_id, actor=events.cli_actor()))
    typer.echo(f"{reviewer_id} is disabled; their sessions ended", err=True)


@app.command()
def enable(reviewer_id: str, config: ConfigOption = None) -> None:
    """Let a disabled reviewer work again (with the token they had)."""
    _lifecycle(config, lambda r: r.enable(reviewer_id, actor=events.cli_actor()))
    typer.echo(f"{reviewer_id} is enabled", err=True)


@app.command("rotate-token")
def rotate_token(reviewer_id: str, config: ConfigOption = None) -> None:
    """A new token for a reviewer, printed once; the old one and its sessions end at once."""
    token = _lifecycle(config, lambda r: r.rotate_token(reviewer_id, actor=events.cli_actor()))
    typer.echo(token)
    typer.echo(f"new token for {reviewer_id}; the old one no longer works", err=True)
