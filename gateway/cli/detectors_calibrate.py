"""``gateway detectors calibrate``: a rule's threshold proposed from reviewers' judgments.

The judged findings of the rule (each with its evidence score) are ranked by score; for each
score seen, the findings at or above it are the ones that threshold would still fire on, and
the reviewers' labels say how many of those were right. The proposal is the lowest such
threshold whose judged precision meets the target. It is shown as a unified diff of the policy
file and applied only with ``--write``. A threshold below the current one cannot be measured:
the rule's silent exchanges were recorded without a score.

Human judgments only, unless ``--include-model`` asks for the model judges' too; every
judgment used is printed (id, reviewer, kind, guideline revision), and so is the count of
those left out.
"""

from __future__ import annotations

import asyncio
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import typer
import yaml

from gateway.cli.common import ConfigOption, config_or_exit, database, fail
from gateway.evaluation.feedback import JudgedFinding, judged_findings, settled, wilson
from gateway.review.states import ReviewerKind

#: human judgments first; model ones only when asked for
_KINDS = (ReviewerKind.HUMAN, ReviewerKind.MODEL)


@dataclass(frozen=True, slots=True)
class Cut:
    """The findings a threshold keeps, and how many of them reviewers judged right."""

    threshold: float
    kept: int
    right: int

    @property
    def precision(self) -> float:
        return self.right / self.kept if self.kept else 0.0

    def line(self, total_right: int) -> str:
        interval = wilson(self.right, self.kept)
        low, high = interval if interval else (0.0, 0.0)
        return (
            f"  >= {self.threshold:.4f}: fires on {self.kept}, judged right {self.right}, "
            f"precision {self.precision:.3f} (95% CI {low:.3f}-{high:.3f}), "
            f"right ones lost {total_right - self.right}"
        )


def cuts(scored: Sequence[tuple[float, int]]) -> list[Cut]:
    """One cut per distinct score, lowest first, from (score, label) pairs."""
    return [
        Cut(t, sum(1 for s, _ in scored if s >= t), sum(label for s, label in scored if s >= t))
        for t in sorted({s for s, _ in scored})
    ]


def propose(found: list[Cut], target: float) -> Cut | None:
    return next((cut for cut in found if cut.precision >= target), None)


def _scored(judged: Sequence[JudgedFinding]) -> list[tuple[float, int, list[JudgedFinding]]]:
    """(score, label, judgments) per fired finding whose judgments settle a label."""
    return [
        (group[0].score, label, group)
        for label, group in settled([f for f in judged if f.fired])
        if group[0].score is not None
    ]


def _threshold_node(root: yaml.Node, rule: str) -> tuple[yaml.Node, str]:
    """The rule's detector parameters node and the detector's name."""
    rules = _get(root, "rules")
    if not isinstance(rules, yaml.SequenceNode):
        raise ValueError("the policy has no rules list")
    for item in rules.value:
        if isinstance(item, yaml.MappingNode) and _scalar(_get(item, "id")) == rule:
            detect = _get(item, "detect")
            if isinstance(detect, yaml.MappingNode) and len(detect.value) == 1:
                key, params = detect.value[0]
                return params, str(key.value)
            raise ValueError(f"rule {rule!r} has no single detector to set a threshold on")
    raise ValueError(f"the policy has no rule {rule!r}")


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                found: yaml.Node = v
                return found
    return None


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def with_threshold(text: str, rule: str, threshold: float) -> str:
    """The policy text with the rule's ``detect.<detector>.threshold`` set, all else as it was."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        raise ValueError("the policy file is empty")
    params, detector = _threshold_node(root, rule)
    # Rounded down, so the lowest finding the threshold is chosen to keep still fires.
    value = f"{math.floor(threshold * 10_000) / 10_000:.4f}".rstrip("0").rstrip(".")
    if not isinstance(params, yaml.MappingNode):
        raise ValueError(f"rule {rule!r}: detect.{detector} is not a mapping of parameters")
    current = _get(params, "threshold")
    if current is not None:
        start, end = current.start_mark.index, current.end_mark.index
        return text[:start] + value + text[end:]
    if params.flow_style:
        at = params.start_mark.index + 1  # just after "{"
        rest = ", " if params.value else ""
        return text[:at] + f"threshold: {value}{rest}" + text[at:]
    first = params.value[0][0]
    at, indent = first.start_mark.index, " " * first.start_mark.column
    return text[:at] + f"threshold: {value}\n{indent}" + text[at:]


def _print_judgments(title: str, judged: Sequence[JudgedFinding]) -> None:
    typer.echo(f"{title}: {len({f.judgment_id for f in judged})}")
    for f in judged:
        said = "right" if f.correct else "wrong"
        typer.echo(
            f"  {f.judgment_id}  reviewer {f.reviewer} ({f.reviewer_kind})  "
            f"guideline {f.guideline_revision or '-'}  exchange {f.exchange_id}  "
            f"score {f.score:.4f}, judged {said}"
        )


def _print_used(scored: Sequence[tuple[float, int, list[JudgedFinding]]], model: bool) -> None:
    used = sorted((f for _, _, group in scored for f in group), key=lambda f: f.judgment_id)
    for kind in _KINDS if model else _KINDS[:1]:
        _print_judgments(f"{kind} judgments used", [f for f in used if f.reviewer_kind == kind])


def _report(
    rule: str, scored: list[tuple[float, int, list[JudgedFinding]]], target: float
) -> Cut | None:
    """Print the cuts; the proposed one, or None when no threshold reaches the target."""
    found = cuts([(s, label) for s, label, _ in scored])
    total_right = sum(label for _, label, _ in scored)
    typer.echo(f"judged findings of {rule} by threshold (target precision {target}):")
    for cut in found:
        typer.echo(cut.line(total_right))
    chosen = propose(found, target)
    if chosen is None:
        typer.echo(f"no threshold reaches precision {target} on these judgments")
    return chosen


def _read(
    config: Path | None, context: str, rule: str, include_model: bool
) -> tuple[list[JudgedFinding], int]:
    """The rule's judged findings (human, and model ones when asked), and how many model
    judgments were left out."""
    settings = config_or_exit(config)
    kinds = _KINDS if include_model else _KINDS[:1]

    async def read() -> tuple[list[JudgedFinding], int]:
        async with database(settings) as sessions:
            used = await judged_findings(sessions, context, rule, kinds=kinds)
            if include_model:
                return used, 0
            left = await judged_findings(sessions, context, rule, kinds=_KINDS[1:])
            return used, len({f.judgment_id for f in left if f.fired})

    return asyncio.run(read())


def _show_diff(path: Path, text: str, proposed: str, *, write: bool) -> None:
    name = str(path)
    diff = difflib.unified_diff(
        text.splitlines(keepends=True), proposed.splitlines(keepends=True), name, name
    )
    typer.echo("".join(diff), nl=False)
    if write:
        path.write_text(proposed, encoding="utf-8")
        typer.echo(f"written to {name}")
    else:
        typer.echo("not applied (--write applies it)")


def register(app: typer.Typer) -> None:
    """Add the command to the ``detectors`` group."""
    app.command("calibrate")(calibrate)


def calibrate(
    context: str = typer.Option(..., "--context"),
    rule: str = typer.Option(..., "--rule"),
    target_precision: float = typer.Option(0.95, min=0.0, max=1.0),
    include_model: bool = typer.Option(
        False, "--include-model", help="count model judges' judgments too (kept apart)"
    ),
    write: bool = typer.Option(False, "--write", help="apply the proposal to the policy file"),
    config: ConfigOption = None,
) -> None:
    """Propose a rule's threshold from reviewers' judgments, as a diff of the policy file."""
    from gateway.cli.policy import find_policy

    policy = find_policy(context, config)
    judged, left_out = _read(config, context, rule, include_model)
    scored = _scored(judged)
    _print_used(scored, include_model)
    if not include_model:
        typer.echo(f"model judgments left out: {left_out} (--include-model counts them)")
    if not scored:
        typer.echo(f"no judged finding of {rule} with a score: nothing to calibrate from")
        return
    chosen = _report(rule, scored, target_precision)
    if chosen is None:
        return
    typer.echo(f"proposed threshold: {chosen.threshold:.4f}")
    text = policy.path.read_text(encoding="utf-8")
    try:
        proposed = with_threshold(text, rule, chosen.threshold)
    except ValueError as exc:
        raise fail(f"{policy.path}: {exc}") from exc
    if proposed == text:
        typer.echo("the policy already has this threshold")
        return
    _show_diff(policy.path, text, proposed, write=write)
