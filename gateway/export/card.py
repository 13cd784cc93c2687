"""The dataset card: a Hugging Face README whose every figure comes from the exported rows.

The figures arrive already counted (``gateway.export.stats.CardStats``, filled by the writer),
so describing an export never needs the rows again. People appear only in aggregate.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime

import yaml

from gateway.export.rows import ExportFilter, ReviewerProfile
from gateway.export.scope import ExportScope, counted, partial_lines
from gateway.export.stats import CardStats

DATA_FILE = "data.jsonl"
PROVENANCE_FILE = "provenance.jsonl"
CARD_FILE = "README.md"
NOTHING_EXPORTED = "- Nothing was exported: "  # the page reads the reason back from this line

_FORMAT_NAMES = {
    "trl": "TRL conversational DPO (`prompt`, `chosen`, `rejected` as message lists)",
    "openai": "OpenAI preference fine-tuning (`input`, `preferred_output`, `non_preferred_output`)",
    "hh": "Anthropic HH-RLHF (`chosen`, `rejected` as Human/Assistant transcripts)",
    "kto": "TRL unpaired KTO (`prompt`, `completion`, `label`)",
}
_VERDICTS = {True: "acceptable", False: "violation", None: "unsure"}
_NOT_DECLARED = "not declared"


def size_category(n: int) -> str:
    if n < 1_000:
        return "n<1K"
    if n < 10_000:
        return "1K<n<10K"
    if n < 100_000:
        return "10K<n<100K"
    if n < 1_000_000:
        return "100K<n<1M"
    return "n>1M"


def _share(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f}%)" if whole else str(part)


def _table(header: tuple[str, str], rows: Iterable[tuple[object, object]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return lines if len(lines) > 2 else [*lines, "| none | 0 |"]


def _fenced(text: str) -> list[str]:
    # A fence longer than any backtick run in the text, so the guideline cannot close it early.
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def _seen_profiles(
    stats: CardStats, reviewers: Mapping[str, ReviewerProfile], judged_by: str
) -> tuple[list[ReviewerProfile], int]:
    """Profiles of the pseudonyms behind ``judged_by`` judgments, and how many had none."""
    seen = sorted({name for kind, name in stats.judges if kind == judged_by})
    profiles = [reviewers[name] for name in seen if name in reviewers]
    return profiles, len(seen) - len(profiles)


def _languages(stats: CardStats, reviewers: Mapping[str, ReviewerProfile]) -> list[str]:
    names = {name for _, name in stats.judges}
    found = {lang for name in names if name in reviewers for lang in reviewers[name].languages}
    return sorted(found) or ["en"]


def _front_matter(
    stats: CardStats, reviewers: Mapping[str, ReviewerProfile], pretty_name: str
) -> str:
    tags = ["preference", "dpo", "situate", "human-feedback"]
    if stats.format == "kto":
        tags.append("kto")
    meta = {
        "license": "other",
        "language": _languages(stats, reviewers),
        "task_categories": ["text-generation"],
        "tags": tags,
        "size_categories": [size_category(stats.records_out)],
        "configs": [{"config_name": "default", "data_files": DATA_FILE}],
        "pretty_name": pretty_name,
    }
    body = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{body}---"


def _filter_text(flt: ExportFilter) -> str:
    def shown(value: object) -> str:
        if value is None:
            return "any"
        return value.isoformat() if isinstance(value, datetime) else f"`{value}`"

    unfinished = "included" if flt.include_partial else "left out"
    return (
        f"format `{flt.format}`, context {shown(flt.context)}, queue {shown(flt.queue)}, "
        f"judged since {shown(flt.since)}, until {shown(flt.until)}, unfinished items {unfinished}"
    )


def _nothing(
    flt: ExportFilter, why: str, export_id: str, exported_by: str, exported_at: datetime
) -> list[str]:
    return [
        "## Dataset summary",
        "",
        f"{NOTHING_EXPORTED}{why}.",
        f"- `{DATA_FILE}` and `{PROVENANCE_FILE}` are empty files.",
        f"- Filter: {_filter_text(flt)}.",
        f"- Export `{export_id}`, made by `{exported_by}` at {exported_at.isoformat()}.",
    ]


def _summary(
    stats: CardStats,
    flt: ExportFilter,
    scope: ExportScope | None,
    export_id: str,
    exported_by: str,
    exported_at: datetime,
) -> list[str]:
    span = (
        f"{stats.first.isoformat()} to {stats.last.isoformat()}"
        if stats.first and stats.last
        else ""
    )
    lines = [
        "## Dataset summary",
        "",
        f"- Format: {_FORMAT_NAMES.get(stats.format, stats.format)}.",
        f"- Records in `{DATA_FILE}`: {stats.records_out},"
        f" from {counted(stats.rows_out, 'judgment')}"
        f" (of {stats.rows_in} received; {stats.rows_in - stats.rows_out} skipped).",
        *([f"- Judgments made from {span}."] if span else []),
        f"- Filter: {_filter_text(flt)}.",
        f"- Export `{export_id}`, made by `{exported_by}` at {exported_at.isoformat()}.",
        "- Verdicts on the original answer: "
        + ", ".join(f"{name} {stats.verdicts[key]}" for key, name in _VERDICTS.items())
        + ".",
        "- Source of the preferred answer: "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.sources.items())) or "none")
        + ".",
    ]
    if flt.include_partial:
        lines.append(
            f"- Judgments on unfinished items among them: {stats.partial} (`partial: true`)."
        )
    lines += partial_lines(scope, flt) if scope is not None else []
    lines += [f"- Left out: {phrase}." for phrase in stats.omitted_phrases()]
    return lines + (["", *_skipped(stats)] if stats.skipped else [])


def _skipped(stats: CardStats) -> list[str]:
    lines = ["Rows this format cannot carry, and why:", ""]
    return lines + [f"- {reason}: {count}." for reason, count in sorted(stats.skipped.items())]


def _contexts(stats: CardStats) -> list[str]:
    lines = ["## Deployment contexts", "", "| Context | Judgments | Records |"]
    lines.append("| --- | ---: | ---: |")
    for context, count in sorted(stats.contexts.items()):
        lines.append(f"| `{context}` | {count} | {stats.context_records[context]} |")
    return lines


def _guideline_lines(stats: CardStats, guidelines: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for revision, count in sorted(stats.guidelines.items()):
        if not revision:
            lines += ["", f"{count} judgments recorded no guideline revision.", ""]
            continue
        path = stats.guideline_paths.get(revision)
        lines += ["", f"### Guideline revision `{revision}`", ""]
        lines.append(f"Used for {count} judgments" + (f"; file `{path}`." if path else "."))
        lines.append("")
        text = guidelines.get(revision)
        lines += _fenced(text) if text is not None else ["The text was not supplied to the export."]
    return lines


def _annotation(stats: CardStats, guidelines: Mapping[str, str]) -> list[str]:
    total = stats.rows_out
    human, model = stats.judged_by["human"], stats.judged_by["model"]
    lines = [
        "## Annotation process",
        "",
        "Exchanges reached review in two ways. Flagged by a policy rule:"
        f" {_share(stats.reasons['flagged'], total)}; drawn by random sampling:"
        f" {_share(stats.reasons['sampled'], total)}.",
        "",
        *_table(("Rule that flagged the exchange", "Judgments"), sorted(stats.rules.items())),
        "",
        *_table(("Review queue", "Judgments"), sorted(stats.queues.items())),
        "",
        *_table(
            ("Judgments per item (all received)", "Items"),
            sorted(stats.judgments_per_item().items()),
        ),
        "",
        f"- Human judgments: {_share(human, total)}.",
        f"- Model judgments: {_share(model, total)}. These were made by a model acting as"
        " judge, not by a person; `judged_by` in the provenance file marks every line.",
        "",
        "Reviewers followed written guidelines; each judgment records the guideline revision"
        " in force when it was made.",
    ]
    return lines + _guideline_lines(stats, guidelines)


def _aggregate(title: str, values: Iterable[str]) -> list[str]:
    counts = Counter(values)
    return ["", *_table((title, "Reviewers"), sorted(counts.items()))]


def _annotators(stats: CardStats, reviewers: Mapping[str, ReviewerProfile]) -> list[str]:
    people, undeclared = _seen_profiles(stats, reviewers, "human")
    models = {name for kind, name in stats.judges if kind == "model"}
    loads = [n for (kind, _), n in stats.judges.items() if kind == "human"]
    lines = [
        "## Who are the annotators?",
        "",
        "Described only in aggregate. Reviewers appear in the provenance file as pseudonyms;"
        " this card gives no names and nothing about any one person.",
        "",
        f"- Distinct human reviewer pseudonyms: {len(people) + undeclared}"
        f" ({undeclared} without a declared profile).",
        f"- Distinct model judges: {len(models)}.",
    ]
    if loads:
        lines.append(
            f"- Judgments per human reviewer: min {min(loads)},"
            f" median {statistics.median(loads):g}, max {max(loads)}."
        )
    lines += _aggregate("Role", (p.role for p in people))
    lines += _aggregate("Organisation", (p.organisation or _NOT_DECLARED for p in people))
    lines += _aggregate("Declared locale", (p.locale or _NOT_DECLARED for p in people))
    lines += _aggregate("Declared language", (lang for p in people for lang in p.languages))
    return lines


def _agreement(stats: CardStats) -> list[str]:
    lines = ["## Agreement", ""]
    if not stats.alpha:
        return [
            *lines,
            "Krippendorff's alpha: not computable; too few items were judged by more than one"
            " reviewer.",
        ]
    lines += ["| Queue | Judgments with alpha | Krippendorff's alpha |", "| --- | ---: | --- |"]
    for queue in sorted(stats.queues):
        a = stats.alpha.get(queue)
        if a is None:
            lines.append(f"| `{queue}` | 0 | not computable |")
            continue
        shown = f"{a.low:.3f}" if a.low == a.high else f"{a.low:.3f} to {a.high:.3f}"
        lines.append(f"| `{queue}` | {a.rows} | {shown} |")
    rows = sum(a.rows for a in stats.alpha.values())
    mean = sum(a.total for a in stats.alpha.values()) / rows
    lines += ["", f"Mean alpha over the {rows} judgments that carry one: {mean:.3f}."]
    return lines


def _sensitive(stats: CardStats) -> list[str]:
    where = ", ".join(f"`{c}`" for c in sorted(stats.redacted_contexts)) or "none"
    return [
        "## Personal and Sensitive Information",
        "",
        f"{_share(stats.redacted, stats.rows_out)} judgments come from exchanges whose records"
        " were kept redacted (`record.content: redacted` in the policy revision that recorded"
        f" each; contexts: {where}).",
        "In those, personal data and secrets were removed before the exchange was stored:"
        " whatever a sensitive rule found (the PII detector finds e-mail addresses, phone"
        " numbers, payment card numbers, IBANs, IP addresses, US SSNs, passwords in URLs and"
        " API keys; rules with `action: redact` or `sensitive: true` too) stands as its label,"
        " such as `[email]`, in the prompt and the answer alike. What the other rules found"
        " is kept as written. Other exchanges keep the text as sent and answered.",
        "",
        "**Warning:** detectors miss things. Prompts, answers and reviewers' rewrites are free"
        " text and may still contain personal data (names, addresses, health or financial"
        " details). Check the data before publishing or sharing it.",
    ]


def _provenance() -> list[str]:
    return [
        "## Provenance",
        "",
        f"`{PROVENANCE_FILE}` has one line per line of `{DATA_FILE}`, in the same order: its"
        " `line` field is the 0-based line number of the record it describes, and `row_id`"
        " identifies the judgment (`<row_id>:preferred` for a second record from the same"
        " judgment). The record formats carry no extra keys, so this file is the link back.",
        "",
        "Every record traces to the gateway exchange it came from (`exchange_id`), the"
        " deployment `context` and review `queue`, the `policy_revision` in force, the"
        " `rule_ids` that flagged it and the `reason` it was reviewed (`flagged` or"
        " `sampled`), the `guideline_revision` the judgment followed, the"
        " `reviewer_pseudonym`, whether it was `judged_by` a `human` or a `model`, the"
        " queue's `agreement` (Krippendorff's alpha, when computable), the `severity`, where"
        " the preferred answer came from (`preferred_source`) and when it was judged"
        " (`judged_at`, ISO 8601). `partial` says whether the item was unfinished when"
        " exported (only with `include_partial`), with its `item_state` (`done`, `open`,"
        " `escalated`, `adjudication`), the `item_judgments` it had and the"
        " `reviewers_per_item` its queue asks for.",
    ]


def _limitations(stats: CardStats) -> list[str]:
    lines = [
        "## Limitations",
        "",
        "- Flagged exchanges are chosen by policy rules, so they over-represent what those"
        " rules look for; only sampled exchanges approximate ordinary traffic.",
        "- Prompts keep role and text only: images, audio, tool-call arguments and assistant"
        " turns without text are dropped.",
        "- Model judgments carry the judge model's biases and are not human feedback.",
        "- `language` in the metadata lists the reviewers' declared languages; the text's"
        " language was not detected.",
        "- Agreement is reported per review queue, not per item.",
    ]
    if stats.format == "hh":
        lines.append(
            "- HH transcripts have no system or tool turns: system messages open the first"
            " Human turn, tool results are left out, and text that itself contains"
            ' "\\n\\nHuman:" cannot be escaped.'
        )
    if stats.skipped:
        lines.append(f"- Judgments this format could not express: {sum(stats.skipped.values())}.")
    return lines


def dataset_card(
    stats: CardStats,
    flt: ExportFilter,
    reviewers: Mapping[str, ReviewerProfile],
    guidelines: Mapping[str, str],
    *,
    export_id: str,
    exported_by: str,
    exported_at: datetime,
    scope: ExportScope | None = None,
    nothing_exported: str | None = None,
) -> str:
    """The card; ``nothing_exported`` (why no record was written) makes it a short one."""
    pretty_name = f"Situate preference data ({stats.format}, export {export_id})"
    if nothing_exported is not None:
        sections = [_nothing(flt, nothing_exported, export_id, exported_by, exported_at)]
        if stats.skipped:
            sections.append(_skipped(stats))
    else:
        sections = [
            _summary(stats, flt, scope, export_id, exported_by, exported_at),
            _contexts(stats),
            _annotation(stats, guidelines),
            _annotators(stats, reviewers),
            _agreement(stats),
            _sensitive(stats),
            _provenance(),
            _limitations(stats),
        ]
    body = "\n\n".join("\n".join(lines) for lines in sections)
    return f"{_front_matter(stats, reviewers, pretty_name)}\n\n# {pretty_name}\n\n{body}\n"
