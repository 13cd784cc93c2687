"""Preference export: the literal record shapes, the provenance sidecar, the dataset card, and
streaming without holding the rows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.export.formats import FORMATS, prompt_messages, records, why_skipped
from gateway.export.rows import ExportFilter, PreferenceRow, ReviewerProfile
from gateway.export.writer import ExportSummary, write_export

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
TOOLS = [{"type": "function", "function": {"name": "balance", "parameters": {"type": "object"}}}]
PROMPT: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Hi"},
            {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
            {"type": "text", "text": "there"},
        ],
    },
    {"role": "assistant", "content": "Hello."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "balance"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    {"role": "user", "content": "What is my balance?", "name": "bob"},
]
CLEAN_PROMPT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi\nthere"},
    {"role": "assistant", "content": "Hello."},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": "What is my balance?"},
]
# The formats that carry tool calls keep them (tests/export/test_tool_export.py has more).
TRL_PROMPT = [
    *CLEAN_PROMPT[:3],
    {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "balance", "arguments": {}}}]},
    {"role": "tool", "name": "balance", "content": "42"},
    CLEAN_PROMPT[4],
]  # fmt: skip
OPENAI_PROMPT = [
    *CLEAN_PROMPT[:3],
    {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "balance", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    CLEAN_PROMPT[4],
]  # fmt: skip
# HH-RLHF cannot carry tool calls: its tests use the conversation without them.
NO_TOOLS = [m for m in PROMPT if m["role"] != "tool" and "tool_calls" not in m]
GUIDELINE = "Prefer answers that are correct.\n\n```\nexample\n```\n"
REVIEWERS = {
    "rev-ant": ReviewerProfile("rev-ant", "reviewer", "Acme", "fr-FR", ["fr", "en"]),
    "rev-bee": ReviewerProfile("rev-bee", "lead", None, None, ["de"]),
}


def row(**changes: Any) -> PreferenceRow:
    base = PreferenceRow(
        row_id="r1",
        exchange_id="ex-1",
        context="support",
        queue="quality",
        prompt=PROMPT,
        original="You have 42.",
        preferred="Your balance is 42 EUR.",
        preferred_source="rewrite",
        acceptable=False,
        severity="low",
        policy_revision="pol-abc",
        rule_ids=["human-likeness"],
        reason="flagged",
        guideline_revision="g-1",
        guideline_path="guidelines/quality.md",
        reviewer_pseudonym="rev-ant",
        judged_by="human",
        agreement=None,
        judged_at=WHEN,
        redacted=False,
        tools=TOOLS,
    )
    return dataclasses.replace(base, **changes)


def only(format: str, r: PreferenceRow) -> dict[str, Any]:
    out = records(format, r)
    assert len(out) == 1
    assert out[0][0] == r.row_id
    return out[0][1]


def test_prompt_keeps_role_and_text_only() -> None:
    assert prompt_messages(row()) == CLEAN_PROMPT


def test_trl_shape() -> None:
    record = only("trl", row())
    assert record == {
        "prompt": TRL_PROMPT,
        "chosen": [{"role": "assistant", "content": "Your balance is 42 EUR."}],
        "rejected": [{"role": "assistant", "content": "You have 42."}],
        "tools": TOOLS,
    }


def test_openai_shape() -> None:
    record = only("openai", row())
    assert record == {
        "input": {"messages": OPENAI_PROMPT, "tools": TOOLS, "parallel_tool_calls": True},
        "preferred_output": [{"role": "assistant", "content": "Your balance is 42 EUR."}],
        "non_preferred_output": [{"role": "assistant", "content": "You have 42."}],
    }
    assert only("openai", row(tools=[]))["input"]["tools"] == []


def test_hh_layout() -> None:
    prefix = "\n\nHuman: Be brief.\n\nHi\nthere\n\nAssistant: Hello.\n\nHuman: What is my balance?"
    assert only("hh", row(prompt=NO_TOOLS)) == {
        "chosen": prefix + "\n\nAssistant: Your balance is 42 EUR.",
        "rejected": prefix + "\n\nAssistant: You have 42.",
    }


def test_hh_single_turn_and_system_only() -> None:
    single = row(prompt=[{"role": "user", "content": "Q?"}])
    assert only("hh", single)["chosen"] == "\n\nHuman: Q?\n\nAssistant: Your balance is 42 EUR."
    system_only = row(prompt=[{"role": "system", "content": "S"}])
    assert only("hh", system_only)["rejected"] == "\n\nHuman: S\n\nAssistant: You have 42."


def test_kto_labels() -> None:
    violation = records("kto", row(tools=[]))
    assert violation == [
        ("r1", {"prompt": TRL_PROMPT, "completion": [_a("You have 42.")], "label": False}),
        (
            "r1:preferred",
            {"prompt": TRL_PROMPT, "completion": [_a("Your balance is 42 EUR.")], "label": True},
        ),
    ]
    kept = row(preferred="You have 42.", preferred_source="original", acceptable=True, tools=[])
    assert records("kto", kept) == [
        ("r1", {"prompt": TRL_PROMPT, "completion": [_a("You have 42.")], "label": True})
    ]
    unsure = row(acceptable=None, preferred=None, preferred_source=None)
    assert records("kto", unsure) == []
    assert why_skipped("kto", unsure) == "verdict unsure and no rewritten answer"
    unsure_rewritten = records("kto", row(acceptable=None))
    assert [(rid, rec["label"]) for rid, rec in unsure_rewritten] == [("r1:preferred", True)]


def _a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


@pytest.mark.parametrize("format", ["trl", "openai", "hh"])
def test_paired_formats_need_two_different_answers(format: str) -> None:
    same = row(preferred="You have 42.", preferred_source="original", acceptable=True)
    same = dataclasses.replace(same, prompt=NO_TOOLS)
    assert records(format, same) == []
    assert why_skipped(format, same) == (
        "preferred answer is the original, so there is no rejected side"
    )
    missing = row(preferred=None, preferred_source=None, acceptable=None, prompt=NO_TOOLS)
    assert records(format, missing) == []
    assert why_skipped(format, missing) == "no preferred answer to pair with the original"
    assert why_skipped(format, row(prompt=NO_TOOLS)) is None


def test_unknown_format(tmp_path: Path) -> None:
    assert FORMATS == ("trl", "openai", "hh", "kto")
    with pytest.raises(ValueError, match="unknown export format"):
        records("csv", row())
    with pytest.raises(ValueError, match="unknown export format"):
        write_export(tmp_path, ExportFilter("csv"), [], {}, {}, exported_by="a", export_id="x")
    assert list(tmp_path.iterdir()) == []


def _sample_rows() -> list[PreferenceRow]:
    return [
        row(),
        row(
            row_id="r2",
            exchange_id="ex-1",
            reviewer_pseudonym="rev-bee",
            preferred="You have 42.",
            preferred_source="original",
            acceptable=True,
        ),
        row(row_id="r3", exchange_id="ex-2", acceptable=None, preferred=None, reason="sampled"),
        row(
            row_id="r4",
            exchange_id="ex-3",
            context="billing",
            queue="billing",
            reviewer_pseudonym="judge-model-1",
            judged_by="model",
            redacted=True,
            agreement=0.71,
            judged_at=WHEN + timedelta(days=2),
            reason="sampled",
            rule_ids=[],
        ),
    ]


def _export(tmp_path: Path, format: str, rows: list[PreferenceRow]) -> ExportSummary:
    return write_export(
        tmp_path / format,
        ExportFilter(format, context=None, since=WHEN - timedelta(days=1)),
        iter(rows),
        REVIEWERS,
        {"g-1": GUIDELINE},
        exported_by="alice@ops",
        export_id="exp-7",
        exported_at=WHEN + timedelta(days=3),
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    block = card.split("---\n")[1]
    meta = yaml.safe_load(block)
    assert isinstance(meta, dict)
    return meta


@pytest.mark.parametrize(
    ("format", "expected"),
    [
        ("trl", [("r1", "ex-1"), ("r4", "ex-3")]),
        ("kto", [("r1", "ex-1"), ("r1:preferred", "ex-1"), ("r2", "ex-1"), ("r4", "ex-3"),
                 ("r4:preferred", "ex-3")]),
    ],
)  # fmt: skip
def test_sidecar_aligns_with_data(
    tmp_path: Path, format: str, expected: list[tuple[str, str]]
) -> None:
    rows = _sample_rows()
    summary = _export(tmp_path, format, rows)
    data = _jsonl(summary.path / "data.jsonl")
    sidecar = _jsonl(summary.path / "provenance.jsonl")
    assert len(data) == len(sidecar) == summary.records_out == len(expected)
    assert [(p["row_id"], p["exchange_id"]) for p in sidecar] == expected
    assert [p["line"] for p in sidecar] == list(range(len(data)))
    by_id = {r.row_id: r for r in rows}
    for record, prov in zip(data, sidecar, strict=True):
        source = by_id[prov["row_id"].split(":")[0]]
        assert record == dict(records(format, source))[prov["row_id"]]
        assert prov["judged_at"] == source.judged_at.isoformat()
        assert prov["judged_by"] == source.judged_by
    assert set(sidecar[0]) == {
        "row_id", "line", "exchange_id", "context", "queue", "policy_revision", "rule_ids",
        "reason", "guideline_revision", "reviewer_pseudonym", "judged_by", "agreement",
        "severity", "preferred_source", "judged_at", "partial", "item_state",
        "item_judgments", "reviewers_per_item",
    }  # fmt: skip
    raw = (summary.path / "data.jsonl").read_bytes()
    assert summary.sha256 == hashlib.sha256(raw).hexdigest()
    assert summary.rows_in == 4
    assert summary.skipped == 4 - len({rid.split(":")[0] for rid, _ in expected})
    assert summary.files == ["data.jsonl", "provenance.jsonl", "README.md"]
    assert sorted(p.name for p in summary.path.iterdir()) == sorted(summary.files)


def test_non_ascii_written_as_is(tmp_path: Path) -> None:
    summary = _export(
        tmp_path, "hh", [row(preferred="Ihr Kontostand beträgt 42 €.", prompt=NO_TOOLS)]
    )
    assert "beträgt 42 €" in (summary.path / "data.jsonl").read_text(encoding="utf-8")


def test_card_front_matter(tmp_path: Path) -> None:
    card = (_export(tmp_path, "kto", _sample_rows()).path / "README.md").read_text("utf-8")
    meta = _front_matter(card)
    assert set(meta) == {
        "license", "language", "task_categories", "tags", "size_categories", "configs",
        "pretty_name",
    }  # fmt: skip
    assert meta["license"] == "other"
    assert meta["language"] == ["de", "en", "fr"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["tags"] == ["preference", "dpo", "situate", "human-feedback", "kto"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default", "data_files": "data.jsonl"}]
    assert "exp-7" in meta["pretty_name"]
    trl = (_export(tmp_path, "trl", _sample_rows()).path / "README.md").read_text("utf-8")
    assert "kto" not in _front_matter(trl)["tags"]


def test_card_language_defaults_to_en(tmp_path: Path) -> None:
    summary = _export(tmp_path, "trl", [row(reviewer_pseudonym="unknown")])
    assert _front_matter((summary.path / "README.md").read_text("utf-8"))["language"] == ["en"]


def test_card_sections_come_from_the_data(tmp_path: Path) -> None:
    card = (_export(tmp_path, "kto", _sample_rows()).path / "README.md").read_text("utf-8")
    for heading in (
        "## Dataset summary",
        "## Deployment contexts",
        "## Annotation process",
        "## Who are the annotators?",
        "## Agreement",
        "## Personal and Sensitive Information",
        "## Provenance",
        "## Limitations",
    ):
        assert heading in card
    # kto exports 3 of the 4 judgments: the unsure one without a rewrite is skipped
    assert "- Human judgments: 2 (66.7%)." in card
    assert "- Model judgments: 1 (33.3%). These were made by a model acting as judge" in card
    assert "| `support` | 2 | 3 |" in card
    assert "| `billing` | 1 | 2 |" in card
    assert "verdict unsure and no rewritten answer: 1" in card
    assert "alice@ops" in card
    assert "2026-11-23T09:30:00+00:00" in card
    assert "2026-11-20T09:30:00+00:00 to 2026-11-22T09:30:00+00:00" in card
    assert "| 1 | 2 |" in card  # judgments per item: ex-2 and ex-3 once, ex-1 twice
    assert "| 2 | 1 |" in card
    assert "Flagged by a policy rule: 2 (66.7%); drawn by random sampling: 1 (33.3%)." in card
    assert "````text\n" + GUIDELINE.rstrip("\n") + "\n````" in card
    assert "guidelines/quality.md" in card
    assert "| `billing` | 1 | 0.710 |" in card
    assert "| `quality` | 0 | not computable |" in card
    assert "1 (33.3%) judgments come from exchanges whose records were kept redacted" in card


def test_card_names_nobody(tmp_path: Path) -> None:
    card = (_export(tmp_path, "kto", _sample_rows()).path / "README.md").read_text("utf-8")
    for pseudonym in ("rev-ant", "rev-bee", "judge-model-1"):
        assert pseudonym not in card
    assert "- Distinct human reviewer pseudonyms: 2 (0 without a declared profile)." in card
    assert "- Distinct model judges: 1." in card
    assert "| Acme | 1 |" in card
    assert "| not declared | 1 |" in card


def test_card_agreement_not_computable(tmp_path: Path) -> None:
    card = (_export(tmp_path, "trl", [row()]).path / "README.md").read_text("utf-8")
    assert "Krippendorff's alpha: not computable" in card


def test_failed_export_leaves_no_data(tmp_path: Path) -> None:
    def broken() -> Iterator[PreferenceRow]:
        yield row()
        raise RuntimeError("cursor lost")

    with pytest.raises(RuntimeError, match="cursor lost"):
        write_export(
            tmp_path, ExportFilter("trl"), broken(), {}, {}, exported_by="a", export_id="x"
        )
    assert list(tmp_path.iterdir()) == []


class _Once:
    """Rows produced on demand and only once; no ``__len__``, so nothing can size it up."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.iterations = 0
        self.produced = 0

    def __iter__(self) -> Iterator[PreferenceRow]:
        self.iterations += 1
        assert self.iterations == 1, "rows were iterated more than once"
        for i in range(self.count):
            self.produced += 1
            # distinct ~2 KB of text per row, so a materialised list would blow the budget
            yield row(
                row_id=f"r{i}",
                exchange_id=f"ex-{i // 2}",
                original=f"original {i} " + "o" * 1000,
                preferred=f"preferred {i} " + "p" * 1000,
                judged_by="model" if i % 5 == 0 else "human",
                agreement=0.5 if i % 3 == 0 else None,
            )


@pytest.mark.parametrize("format", ["trl", "kto"])  # one paired, one unpaired
def test_streams_twenty_thousand_rows(tmp_path: Path, format: str) -> None:
    # What a first export loads once (modules imported lazily, caches) is not what streaming
    # costs per row: a small export first, so the peak measures the twenty thousand.
    warm = tmp_path / "warm"
    warm.mkdir()
    filters = ExportFilter(format)
    write_export(warm, filters, _Once(10), REVIEWERS, {}, exported_by="a", export_id="w")
    rows = _Once(20_000)
    tracemalloc.start()
    try:
        summary = write_export(
            tmp_path, ExportFilter(format), rows, REVIEWERS, {}, exported_by="a", export_id="big"
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows.produced == 20_000 and rows.iterations == 1
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert summary.rows_in == 20_000
    lines = 0
    with (tmp_path / "data.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            json.loads(line)
            lines += 1
    assert lines == summary.records_out == (40_000 if format == "kto" else 20_000)
    card = (tmp_path / "README.md").read_text("utf-8")
    assert _front_matter(card)["size_categories"] == ["10K<n<100K"]
    assert "| 2 | 10000 |" in card  # two judgments for each of the 10,000 exchanges
