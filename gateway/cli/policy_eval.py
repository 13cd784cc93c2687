"""``gateway policy eval``: what a policy catches on the harmful side, and wrongly stops on
the benign side, per rule and overall."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from gateway.cli.common import ConfigOption
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.evaluate import evaluate, without_scope

DEFAULT_POSITIVE = "1,true,yes,harmful,unsafe,injection,jailbreak,positive"


def read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if not isinstance(data, list):
        raise typer.BadParameter(f"{path}: expected a list of records")
    return data


def _pick(row: dict[str, Any], wanted: str | None, fallbacks: tuple[str, ...]) -> Any:
    for key in (wanted,) if wanted else fallbacks:
        if key in row:
            return row[key]
    raise typer.BadParameter(f"no column among {wanted or fallbacks}; columns: {list(row)}")


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


def _labelled(
    dataset: Path,
    text_column: str | None,
    label_column: str | None,
    positive: str,
    limit: int | None,
) -> list[tuple[str, bool]]:
    """Each row's text, and whether its label is on the harmful side."""
    positives = {v.strip().lower() for v in positive.split(",")}
    return [
        (
            str(_pick(row, text_column, ("text", "prompt", "full_text"))),
            str(row.get(label_column or "label", "")).strip().lower() in positives,
        )
        for row in read_rows(dataset)[:limit]
    ]


def eval_command(
    dataset: Path = typer.Option(..., "--dataset", exists=True, dir_okay=False),
    context: str = typer.Option(..., "--context"),
    text_column: str | None = typer.Option(None, help="default: text, prompt or full_text"),
    label_column: str | None = typer.Option(None, help="default: label; none: all benign"),
    positive: str = typer.Option(DEFAULT_POSITIVE, help="label values of the harmful side"),
    stage: str = typer.Option("input", help="input or output"),
    scope: bool = typer.Option(True, help="include the topic scope (--no-scope: rules only)"),
    limit: int | None = typer.Option(None, min=1, help="only the first N rows"),
    as_json: bool = typer.Option(False, "--json"),
    config: ConfigOption = None,
) -> None:
    """Per rule and overall: the harmful side caught, the benign side wrongly stopped."""
    from gateway.cli.policy import find_policy

    policy = find_policy(context, config)
    policy = policy if scope else without_scope(policy)
    rows = _labelled(dataset, text_column, label_column, positive, limit)
    report = {
        "context": policy.context,
        "revision": policy.revision,
        "dataset": str(dataset),
        "stage": stage,
        "scope": scope,
        **tally(policy, rows, stage),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"{policy.context} at {policy.short_revision} on {dataset.name} ({stage}"
        f"{'' if scope else ', rules only'})"
    )
    _print(report)


def tally(policy: CompiledPolicy, rows: list[tuple[str, bool]], stage: str) -> dict[str, Any]:
    """Counts per side (harmful when the flag is true): stopped overall, fired per rule."""
    sides: Counter[str] = Counter()
    stopped: Counter[str] = Counter()
    fired: Counter[tuple[str, str]] = Counter()
    for text, harmful in rows:
        side = "harmful" if harmful else "benign"
        verdict = evaluate(policy, text, stage)
        sides[side] += 1
        stopped[side] += verdict.stopped
        for rule in set(verdict.fired()):
            fired[(rule, side)] += 1
    return {
        "harmful": sides["harmful"],
        "benign": sides["benign"],
        "harmful_stopped": stopped["harmful"],
        "benign_stopped": stopped["benign"],
        "rules": {
            rule: {"harmful": fired[(rule, "harmful")], "benign": fired[(rule, "benign")]}
            for rule in sorted({r for r, _ in fired})
        },
    }


def _print(report: dict[str, Any]) -> None:
    harmful, benign = report["harmful"], report["benign"]
    typer.echo(
        f"overall: harmful caught {_share(report['harmful_stopped'], harmful)}, "
        f"benign wrongly stopped {_share(report['benign_stopped'], benign)}"
    )
    for rule, counts in report["rules"].items():
        typer.echo(
            f"  {rule:<32} fires on harmful {_share(counts['harmful'], harmful)}"
            f", on benign {_share(counts['benign'], benign)}"
        )
