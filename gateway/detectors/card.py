"""The model card ``gateway detectors train`` writes beside the weights (Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "-"


def figure_rows(name: str, result: dict[str, Any]) -> list[str]:
    rows = [
        f"| {name} | {_share(result['caught'], result['positives'])} | "
        f"{_share(result['stopped'], result['benign'])} |"
    ]
    for lang, part in sorted(result.get("languages", {}).items()):
        rows.append(
            f"| {name}, `{lang}` | {_share(part['caught'], part['positives'])} | "
            f"{_share(part['stopped'], part['benign'])} |"
        )
    return rows


def _table(figures: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| data | caught (recall) | wrongly stopped |", "| --- | --- | --- |"]
    for name, result in figures.items():
        lines.extend(figure_rows(name, result))
    return lines


def _reviews(reviews: Sequence[dict[str, Any]]) -> list[str]:
    if not reviews:
        return ["No reviewer-labelled exchanges were used."]
    lines = []
    for kind in ("human", "model"):
        used = [r for r in reviews if kind in r.get("reviewer_kinds", [])]
        if not used:
            lines.append(f"- {kind} judgments: none used.")
            continue
        ids = sorted({j for r in used for j in r["judgments"]})
        reviewers = sorted({v for r in used for v in r["reviewers"]})
        guidelines = sorted({g for r in used for g in r["guideline_revisions"]})
        lines.append(
            f"- {kind} judgments: {len(used)} examples from {len(ids)} judgments "
            f"({', '.join(ids)}); reviewers {', '.join(reviewers)}; "
            f"guideline revisions {', '.join(guidelines) or 'none recorded'}"
        )
    return lines


def render(meta: dict[str, Any], figures: dict[str, Any], heldout: dict[str, Any]) -> str:
    """The card: what the model is, its data, threshold, figures and how to reproduce it."""
    lines = [
        f"# Model card: `{meta['name']}`",
        "",
        meta["purpose"],
        "",
        "## The model",
        "",
        f"- Revision: `{meta['revision']}` (the digest of `{meta['file']}`), "
        f"{meta['size']:,} bytes.",
        f"- Features: {meta['features']}.",
        "- A logistic regression over them; scored by `gateway/detectors/linear.py` in numpy "
        "(no scikit-learn at run time); its scores match scikit-learn's to "
        f"{meta['max_difference']:.1e}.",
        f"- Run-time cost, one core, a 500-character text: {meta['cost']}.",
        "",
        "## Data",
        "",
        "| data | license | used for |",
        "| --- | --- | --- |",
        *[f"| {name} | {license} | {use} |" for name, license, use in meta["sources"]],
        "",
        f"Rows: {meta['rows']}.",
        "",
        "## Reviewer-labelled examples",
        "",
        *_reviews(meta.get("reviews", [])),
        "",
        "## Operating threshold",
        "",
        f"**{meta['threshold']:.4f}**. {meta['threshold_rule']}",
        "",
        "## Measured at that threshold",
        "",
        "Validation is where the threshold was chosen; the rest were not used for training "
        "or for the threshold.",
        "",
        *_table(figures),
        "",
    ]
    if heldout:
        lines += [
            "### Held-out sets (evals/, never used for training or the threshold)",
            "",
            *_table(heldout),
            "",
        ]
    lines += ["## Reproduce", "", "```sh", meta["command"], "```", ""]
    return "\n".join(lines)
