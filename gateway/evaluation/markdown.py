"""The Markdown form of a ``gateway policy eval`` report: the JSON's figures, for people."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.evaluation.stats import format_share
from gateway.policy.actions import Mode


def _table(head: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _rule_label(rule: str, rules: dict[str, Any]) -> str:
    meta = rules.get(rule)
    if meta is None:  # the topic scope or a limit, not a rule of the file
        return f"`{rule}`"
    shadow = ", shadow" if meta["mode"] == Mode.SHADOW else ""
    return f"`{rule}` ({meta['action']}{shadow})"


def _labelled(dataset: dict[str, Any], rules: dict[str, Any]) -> list[str]:
    lines = _table(
        ["", "caught (harmful side)", "wrongly stopped (benign side)"],
        [
            [
                "policy (blocked)",
                format_share(dataset["caught"]),
                format_share(dataset["wrongly_stopped"]),
            ],
            *(
                [
                    _rule_label(r["rule"], rules) + " fired",
                    format_share(r["caught"]),
                    format_share(r["wrongly_fired"]),
                ]
                for r in dataset["rules"]
            ),
        ],
    )
    if dataset.get("errors"):
        examples = "; ".join(dataset.get("error_examples", []))
        lines += [
            "",
            f"On {dataset['errors']} rows a check failed and its rule's `on_error` decided"
            f" (a fail_closed failure counts as not stopped): {examples}",
        ]
    languages = dataset["languages"]
    if len(languages) > 1 or (languages and set(languages) != {"en"}):
        lines += ["", "Per language:", ""]
        lines += _table(
            ["language", "", "caught (harmful side)", "wrongly stopped (benign side)"],
            _language_rows(languages, rules),
        )
    if dataset.get("groups"):
        lines += ["", f"Per {dataset['by']}:", ""]
        lines += _table(
            [dataset["by"], "", "caught (harmful side)", "wrongly stopped (benign side)"],
            _language_rows(dataset["groups"], rules),
        )
    return lines


def _language_rows(languages: dict[str, Any], rules: dict[str, Any]) -> Iterable[list[str]]:
    for lang, figures in languages.items():
        yield [
            lang,
            "policy (blocked)",
            format_share(figures["caught"]),
            format_share(figures["wrongly_stopped"]),
        ]
        for r in figures["rules"]:
            if r["caught"]["count"] or r["wrongly_fired"]["count"]:
                yield [
                    lang,
                    _rule_label(r["rule"], rules) + " fired",
                    format_share(r["caught"]),
                    format_share(r["wrongly_fired"]),
                ]


def _spans(dataset: dict[str, Any], rules: dict[str, Any]) -> list[str]:
    return _table(
        [
            "rule",
            "entities",
            "records holding them: fired (caught)",
            "records without them: fired (wrongly)",
            "labelled spans found",
            "spans found that are not labelled",
        ],
        (
            [
                _rule_label(r["rule"], rules),
                ", ".join(r["entities"]),
                format_share(r["caught"]),
                format_share(r["wrongly_fired"]),
                format_share(r["spans_found"]),
                str(r["false_spans"]),
            ]
            for r in dataset["rules"]
        ),
    )


def _dataset(dataset: dict[str, Any], rules: dict[str, Any]) -> list[str]:
    where = "rules and topic scope" if dataset["scope"] else "rules only, no topic scope"
    if dataset["kind"] == "spans":
        where = "each `pii` rule on the entities it detects"
    origin = "; ".join(
        part
        for part in (
            f"source: {dataset['source']}" if dataset.get("source") else "",
            f"license: {dataset['license']}" if dataset.get("license") else "",
        )
        if part
    )
    lines = [
        f"### {dataset['name']}",
        "",
        f"`{dataset['path']}`, {dataset['rows']} rows, {dataset['stage']} stage, {where}"
        + (f"; {origin}" if origin else "")
        + ".",
        "",
    ]
    if not dataset["rules"] and dataset["kind"] == "spans":
        return [*lines, "No `pii` rule of this context reads the entities this set labels."]
    body = _spans if dataset["kind"] == "spans" else _labelled
    return lines + body(dataset, rules)


def _models(rules: dict[str, Any]) -> list[str]:
    learned = {rule: meta for rule, meta in rules.items() if meta["models"] or meta.get("stages")}
    if not learned:
        return ["No rule of this policy produced a finding from a learned model."]
    return _table(
        ["rule", "detector", "model (name@revision)", "cascade stages that decided"],
        (
            [
                f"`{r}`",
                m["detector"],
                ", ".join(f"`{s}`" for s in m["models"]) or "—",
                ", ".join(f"`{s}`" for s in m.get("stages", [])) or "—",
            ]
            for r, m in learned.items()
        ),
    )


def render_context(report: dict[str, Any], level: int = 2) -> str:
    """One context's report as Markdown, its heading at ``level``."""
    rules = report["rules"]
    lines = [
        f"{'#' * level} {report['context']}",
        "",
        f"Policy `{report['policy_file']}` at revision `{report['policy_revision'][:12]}`"
        f" (`{report['policy_revision']}`), measured {report['generated']}.",
        "",
        *_models(rules),
        "",
    ]
    for dataset in report["datasets"]:
        lines += [
            line.replace("### ", "#" * (level + 1) + " ", 1) for line in _dataset(dataset, rules)
        ]
        lines.append("")
    lines += ["Regenerate with:", "", "```sh", report["command"], "```", ""]
    return "\n".join(lines)


HOW_TO_READ = """\
Each row runs through the context's compiled policy as a request would. *Caught* is the share
of the harmful side the policy blocks (or a rule fires on); *wrongly stopped* the share of the
benign side it blocks (or the rule fires on). Every share has its 95% Wilson confidence
interval; a rule appears under a dataset when it fired at least once on it. `scope.topic` is
the topic scope; on scope sets the harmful side is the off-topic messages."""
