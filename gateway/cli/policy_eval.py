"""``gateway policy eval``: what a policy catches on the harmful side, and wrongly stops on
the benign side, per rule, per dataset and per language, with 95% intervals; or, with
``--from-reviews``, each rule's precision as reviewers judged it.

Output: a short summary on stdout, and the report as JSON and Markdown where asked
(``--json FILE``, ``--markdown FILE``, ``-`` for stdout; ``--report DIR`` for
``DIR/<context>.json`` and ``DIR/<context>.md``).
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml

from gateway.checks.registry import default_registry
from gateway.cli.common import ConfigOption, config_or_exit, fail, run_with_db
from gateway.evaluation import bipia
from gateway.evaluation.datasets import (
    DEFAULT_POSITIVE,
    DatasetError,
    DatasetSpec,
    load_manifest,
    missing,
)
from gateway.evaluation.markdown import render_context
from gateway.evaluation.report import context_report
from gateway.evaluation.runtime import evaluation_runtime
from gateway.evaluation.stats import format_share
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError, load_policy, policy_files
from gateway.policy.store import served_folder

STDOUT = "-"


def _outputs(
    report_dir: Path | None, markdown: str | None, json_out: str | None, context: str
) -> tuple[str | None, str | None]:
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        markdown = markdown or str(report_dir / f"{context}.md")
        json_out = json_out or str(report_dir / f"{context}.json")
    return markdown, json_out


def _write(target: str | None, text: str) -> None:
    if target is None:
        return
    if target == STDOUT:
        typer.echo(text)
    else:
        Path(target).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def _command() -> str:
    return shlex.join(["gateway", *sys.argv[1:]])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _summary(report: dict[str, Any]) -> None:
    """The short form: per dataset, both sides overall and per rule that fired."""
    typer.echo(f"{report['context']} at {report['policy_revision'][:12]}")
    for data in report["datasets"]:
        where = "" if data["scope"] else ", rules only"
        typer.echo(f"{data['name']} ({data['stage']}{where}, {data['rows']} rows)")
        if data["kind"] == "labelled":
            typer.echo(
                f"  overall: harmful caught {format_share(data['caught'])},"
                f" benign wrongly stopped {format_share(data['wrongly_stopped'])}"
            )
        for rule in data["rules"]:
            typer.echo(
                f"  {rule['rule']:<28} fires on harmful {format_share(rule['caught'])},"
                f" on benign {format_share(rule['wrongly_fired'])}"
            )


def _compiled(context: str, config: Path | None) -> CompiledPolicy:
    """The context's policy as the gateway serves it, compiled with a detector runtime that
    waits for every model score (the request path's time budgets are the bench's business)."""
    settings = config_or_exit(config)
    registry = default_registry(evaluation_runtime())
    problems = []
    for file in policy_files(served_folder(settings)):
        if _declared_context(file) not in (context, None):
            continue  # compiling a policy builds its scope's embeddings: only the one asked
        try:
            policy = load_policy(file, registry, settings.models.keys())
        except PolicyError as exc:
            problems += [str(p) for p in exc.problems]
            continue
        if policy.context == context:
            return policy
    raise fail(
        f"no valid policy for context {context!r}"
        + (": " + "; ".join(problems) if problems else "")
    )


def _declared_context(file: Path) -> str | None:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # the loader says what is wrong with it
    found = data.get("context") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def _specs(
    dataset: Path | None, datasets: Path | None, single: dict[str, Any], *, alone: bool = False
) -> list[DatasetSpec]:
    """The datasets asked for; none at all only where ``alone`` (--bipia) is enough."""
    if dataset is None and datasets is None and alone:
        return []
    if (dataset is None) == (datasets is None):
        raise fail("give --dataset FILE or --datasets MANIFEST (or --bipia DIR, --from-reviews)")
    try:
        if datasets is not None:
            specs = load_manifest(datasets)
        else:
            assert dataset is not None  # exactly one of the two, checked above
            specs = [DatasetSpec(path=dataset, **single)]
    except DatasetError as exc:
        raise fail(str(exc)) from exc
    absent = missing(specs)
    if absent:
        raise fail("no such dataset file: " + ", ".join(map(str, absent)))
    return specs


def eval_command(
    context: str = typer.Option(..., "--context"),
    dataset: Path | None = typer.Option(None, "--dataset", exists=True, dir_okay=False),
    datasets: Path | None = typer.Option(
        None,
        "--datasets",
        exists=True,
        dir_okay=False,
        help="A YAML/JSON list of datasets (path, name, source, license, the column options,"
        " stage, scope, side, limit): several at once",
    ),
    name: str | None = typer.Option(None, help="the dataset's name in the report"),
    source: str | None = typer.Option(None, help="where the dataset comes from"),
    license_: str | None = typer.Option(None, "--license", help="the dataset's license"),
    text_column: str | None = typer.Option(None, help="default: text, prompt, full_text or goal"),
    label_column: str | None = typer.Option(None, help="default: label; none: all on --side"),
    positive: str = typer.Option(DEFAULT_POSITIVE, help="label values of the harmful side"),
    side: str | None = typer.Option(None, help="harmful or benign: a file of one side, unlabelled"),
    lang_column: str | None = typer.Option(None, help="default: lang, when the file has it"),
    by: str | None = typer.Option(None, help="a column to break the figures down by too"),
    stage: str = typer.Option("input", help="input or output"),
    scope: bool = typer.Option(True, help="include the topic scope (--no-scope: rules only)"),
    limit: int | None = typer.Option(None, min=1, help="only the first N rows"),
    json_out: str | None = typer.Option(
        None, "--json", metavar="FILE", help="write the JSON report to FILE (-: stdout)"
    ),
    markdown: str | None = typer.Option(
        None, "--markdown", metavar="FILE", help="write the Markdown report to FILE (-: stdout)"
    ),
    report_dir: Path | None = typer.Option(
        None, "--report", file_okay=False, help="write DIR/<context>.json and DIR/<context>.md"
    ),
    from_reviews: bool = typer.Option(
        False, "--from-reviews", help="each rule's precision as reviewers judged it"
    ),
    bipia_dir: Path | None = typer.Option(
        None,
        "--bipia",
        exists=True,
        file_okay=False,
        help="BIPIA's folder: its text attacks planted in its e-mails as tool results (and the"
        " clean e-mails), measured beside the datasets (alone if none is given)",
    ),
    bipia_split: str = typer.Option("test", help="the BIPIA split: test (default) or train"),
    config: ConfigOption = None,
) -> None:
    """Per rule, dataset and language: the harmful side caught, the benign side wrongly
    stopped, with 95% intervals and the model revisions; or reviewers' judged precision."""
    markdown, json_out = _outputs(report_dir, markdown, json_out, context)
    if from_reviews:
        _from_reviews(context, config, markdown, json_out)
        return
    single = {
        "name": name or "",
        "source": source,
        "license": license_,
        "text_column": text_column,
        "label_column": label_column,
        "positive": positive,
        "side": side,
        "lang_column": lang_column,
        "by": by,
        "stage": stage,
        "scope": scope,
        "limit": limit,
    }
    specs = _specs(dataset, datasets, single, alone=bipia_dir is not None)
    policy = _compiled(context, config)
    try:
        report = context_report(policy, specs, _command(), _now())
        if bipia_dir is not None:
            bipia.add_to_report(report, policy, bipia_dir, bipia_split, limit)
    except DatasetError as exc:
        raise fail(str(exc)) from exc
    if STDOUT not in (json_out, markdown):
        _summary(report)
    _write(json_out, json.dumps(report, indent=2, ensure_ascii=False))
    _write(markdown, render_context(report, level=1))


def _from_reviews(
    context: str, config: Path | None, markdown: str | None, json_out: str | None
) -> None:
    from gateway.evaluation.reviews import render_reviews, reviews_report

    settings = config_or_exit(config)
    command, generated = _command(), _now()
    report = run_with_db(
        settings, lambda sessions: reviews_report(sessions, context, command, generated)
    )
    text = render_reviews(report)
    if STDOUT not in (json_out, markdown):
        typer.echo(text)
    _write(json_out, json.dumps(report, indent=2, ensure_ascii=False))
    _write(markdown, text)
