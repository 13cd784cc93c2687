"""``gateway policy``: check, test, explain and evaluate deployment-context policies."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gateway.checks.registry import default_registry
from gateway.cli.common import ConfigOption, command_registry, config_or_exit, fail
from gateway.cli.policy_eval import eval_command
from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.evaluate import ScopeReading, evaluate, read_scope
from gateway.policy.loader import PolicyError, load_policy, policy_files
from gateway.policy.schema import Policy
from gateway.policy.store import compile_problem, served_folder
from gateway.policy.testcases import load_cases, run_case, tests_path

app = typer.Typer(help="Deployment-context policies.", no_args_is_help=True)
app.command("eval")(eval_command)


def _files(path: Path) -> list[Path]:
    return policy_files(path) if path.is_dir() else [path]


def compile_all(path: Path | None, config: Path | None) -> tuple[list[CompiledPolicy], list[str]]:
    settings = config_or_exit(config)
    target = path or served_folder(settings)
    if not target.exists():
        raise fail(f"{target}: no such file or folder")
    compiled, problems = [], []
    registry = command_registry(settings)
    for file in _files(target):
        try:
            compiled.append(load_policy(file, registry, settings.models.keys()))
        except PolicyError as exc:
            problems += [str(p) for p in exc.problems]
        except Exception as exc:  # a detector's own code raising: this file's problem too
            problems.append(compile_problem(file, exc))
    return compiled, problems


def find_policy(context: str, config: Path | None) -> CompiledPolicy:
    compiled, problems = compile_all(None, config)
    for policy in compiled:
        if policy.context == context:
            return policy
    raise fail(
        f"no valid policy for context {context!r}"
        + (": " + "; ".join(problems) if problems else "")
    )


#: six months in days, rounded up (the EU AI Act's minimum for deployers' logs)
SIX_MONTHS_DAYS = 183


@app.command()
def check(
    path: Path | None = typer.Argument(None, help="A policy file or folder."),
    config: ConfigOption = None,
) -> None:
    """Validate policies; print every problem with its file and line."""
    compiled, problems = compile_all(path, config)
    for problem in problems:
        typer.echo(problem, err=True)
    for policy in compiled:
        typer.echo(f"ok  {policy.context}  {policy.short_revision}  {policy.path}")
        days = policy.policy.record.retention_days
        if days is not None and days < SIX_MONTHS_DAYS:
            typer.echo(
                f"warning: {policy.path}: record.retention_days is {days}: the EU AI Act asks "
                f"deployers of high-risk systems to keep their logs at least six months "
                f"(Art. 19, 26(6); {SIX_MONTHS_DAYS} days) unless other law says otherwise",
                err=True,
            )
    if problems:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a policy file (for editors)."""
    document = Policy.model_json_schema()
    detect = document["$defs"]["Rule"]["properties"]["detect"]
    detect["propertyNames"] = {"enum": default_registry().names}
    typer.echo(json.dumps(document, indent=2))


@app.command("test")
def run_tests(
    path: Path | None = typer.Argument(None, help="A policy file or folder."),
    cases: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Run this case file instead (e.g. reviewers' candidates); needs --context.",
    ),
    context: str | None = typer.Option(None, help="The context --cases are for."),
    config: ConfigOption = None,
) -> None:
    """Run the test cases beside each policy (<context>.tests.yaml), or a given case file."""
    if cases is not None:
        if context is None:
            raise fail("--cases needs --context")
        failed = _run_file(find_policy(context, config), cases)
    else:
        compiled, problems = compile_all(path, config)
        failed = len(problems)
        for problem in problems:
            typer.echo(problem, err=True)
        for policy in compiled:
            cases_file = tests_path(policy.path)
            if not cases_file.exists():
                typer.echo(f"--  {policy.context}: no test cases ({cases_file.name})")
                continue
            failed += _run_file(policy, cases_file)
    if failed:
        raise typer.Exit(1)


def _run_file(policy: CompiledPolicy, cases_file: Path) -> int:
    """Run one case file against a policy; the number of failures."""
    try:
        cases = load_cases(cases_file)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        return 1
    failed = 0
    for case in cases:
        failures = run_case(policy, case)
        failed += bool(failures)
        mark = "FAIL" if failures else "ok  "
        typer.echo(
            f"{mark} {policy.context}: {case.name}" + "".join(f"\n       {f}" for f in failures)
        )
    return failed


@app.command()
def explain(
    text: str,
    context: str = typer.Option(..., "--context"),
    stage: str = typer.Option("input", help="input or output"),
    config: ConfigOption = None,
) -> None:
    """Show which rules fire on a text, on which spans, and why."""
    policy = find_policy(context, config)
    verdict = evaluate(policy, text, stage)
    typer.echo(
        f"context {policy.context} at {policy.short_revision}: {verdict.action}"
        + (f" ({verdict.error})" if verdict.error else "")
    )
    if stage == Stage.INPUT:
        typer.echo(scope_sentence(read_scope(policy, text)))
    for outcome in verdict.decision.outcomes:
        mode = " (shadow: recorded, not enforced)" if outcome.shadow else ""
        typer.echo(
            f"- {outcome.rule} [{outcome.detector}] → {outcome.action}{mode}: {outcome.why}"
        )
        if outcome.rule == "scope.topic":
            continue  # the scope line above says what its evidence would
        for e in outcome.evidence:
            shown = text[e.start : e.end] if e.message >= 0 else ""
            by = f", {e.source}" if e.source else ""
            typer.echo(f"    {e.start}-{e.end} {e.label} (score {e.score:.2f}{by}) {shown!r}")
    if not verdict.decision.outcomes:
        typer.echo("no rule fired")


def scope_sentence(reading: ScopeReading) -> str:
    """One line saying how the topic scope reads the text, in words."""
    if not reading.topics:
        return "scope: no topics are defined, so every subject is in scope"
    if not reading.judged:
        return (
            f"scope: not judged: fewer than {reading.min_words} words "
            "(greetings and follow-ups are let through)"
        )
    if reading.topic is None:
        near = "no topic is near (no topic shares a content word with the text)"
    else:
        near = f"nearest topic {reading.topic!r} (score {reading.score:.2f})"
    verdict = "in scope" if reading.in_scope else f"out of scope ({reading.out_of_scope})"
    if reading.out_of_scope == "allow":
        verdict += ", not enforced (out_of_scope: allow)"
    return f"scope: {near}; in scope from {reading.threshold:.2f}: {verdict}"
