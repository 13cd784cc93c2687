"""Each rule's precision as reviewers judged it, from the review records (``--from-reviews``).

Human and model judgments are counted apart, never pooled: a model's verdicts are a second
opinion, not reviewers' evidence. The report lists every judgment id it used.
"""

from __future__ import annotations

from typing import Any

from gateway.db.session import Sessions
from gateway.evaluation.feedback import rule_precision
from gateway.evaluation.stats import format_share
from gateway.review.states import ReviewerKind

KINDS = (ReviewerKind.HUMAN, ReviewerKind.MODEL)


async def reviews_report(
    sessions: Sessions, context: str, command: str, generated: str
) -> dict[str, Any]:
    """Per kind of reviewer (human, model): each rule's judged precision and agreement."""
    return {
        "context": context,
        "generated": generated,
        "command": command,
        "judged_by": {
            kind: await rule_precision(sessions, context, kinds=(kind,)) for kind in KINDS
        },
    }


def _precision(row: dict[str, Any]) -> str:
    if not row["judged"]:
        return "—"
    share = {
        "count": row["judged_right"],
        "of": row["judged"],
        "share": row["precision"],
        "ci95": row["ci95"],
    }
    return format_share(share)


def _alpha(row: dict[str, Any]) -> str:
    alpha = row["agreement_alpha"]
    return "—" if alpha is None else f"{alpha:.2f}"


def render_reviews(report: dict[str, Any]) -> str:
    lines = [
        f"## {report['context']}: rules as reviewers judged them",
        "",
        f"Measured {report['generated']} from the review records. Precision is the share of the"
        " rule's judged findings that reviewers judged right (95% Wilson interval); agreement is"
        " Krippendorff's alpha where at least two reviewers judged the same finding.",
        "",
    ]
    for kind, rows in report["judged_by"].items():
        lines += [f"### Judged by {kind} reviewers", ""]
        if not rows:
            lines += [f"No {kind} judgments on this context's rules.", ""]
            continue
        lines += [
            "| rule | fired (exchanges) | judged | precision | agreement (alpha) | unresolved"
            " | judgments used |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            shadow = " (shadow)" if row.get("shadow") else ""
            lines.append(
                f"| `{row['rule']}`{shadow} | {row['fired']} | {row['judged']} | {_precision(row)}"
                f" | {_alpha(row)} | {row['unresolved']} | {', '.join(row['judgments']) or '—'} |"
            )
        lines.append("")
    lines += ["Regenerate with:", "", "```sh", report["command"], "```", ""]
    return "\n".join(lines)
