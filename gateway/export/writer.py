"""Write an export directory: data.jsonl, its provenance sidecar, and the dataset card.

Rows are consumed once, as they come: an export may span more judgments than fit in memory,
and the caller's iterator may be a database cursor that cannot be rewound.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gateway.export.card import CARD_FILE, DATA_FILE, PROVENANCE_FILE, dataset_card
from gateway.export.formats import FORMATS, records, why_skipped
from gateway.export.rows import OMISSIONS, ExportFilter, Omitted, PreferenceRow, ReviewerProfile
from gateway.export.scope import ExportScope, unfinished_counts, why_empty
from gateway.export.stats import CardStats

_PARTIAL = ".partial"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    export_id: str
    format: str
    rows_in: int
    records_out: int
    skipped: int
    path: Path
    files: list[str]
    sha256: str  # of data.jsonl, as written
    nothing_exported: str | None = None  # why no record was written, when none was
    # Judgments (and items) the filter reached that the export left out, in all, and per
    # reason: unfinished (below reviewers_per_item, with a lead) and OMISSIONS.
    left_out: dict[str, int] = field(default_factory=dict)
    left_out_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    partial_included: dict[str, int] = field(default_factory=dict)
    left_out_notes: list[str] = field(default_factory=list)  # the card's OMISSIONS phrases


def provenance(row: PreferenceRow, row_id: str, line: int) -> dict[str, Any]:
    """The sidecar line for the record on ``line`` of data.jsonl."""
    return {
        "row_id": row_id,
        "line": line,
        "exchange_id": row.exchange_id,
        "context": row.context,
        "queue": row.queue,
        "policy_revision": row.policy_revision,
        "rule_ids": list(row.rule_ids),
        "reason": row.reason,
        "guideline_revision": row.guideline_revision,
        "reviewer_pseudonym": row.reviewer_pseudonym,
        "judged_by": row.judged_by,
        "agreement": row.agreement,
        "severity": row.severity,
        "preferred_source": row.preferred_source,
        "judged_at": row.judged_at.isoformat(),
        "partial": row.partial,
        "item_state": row.item_state,
        "item_judgments": row.item_judgments,
        "reviewers_per_item": row.reviewers_per_item,
    }


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")


def _stream(
    format: str,
    rows: Iterable[PreferenceRow | Omitted],
    data: IO[bytes],
    sidecar: IO[bytes],
    stats: CardStats,
) -> str:
    """Write every record and its sidecar line; the sha256 of data.jsonl."""
    digest = hashlib.sha256()
    line = 0
    for row in rows:
        if isinstance(row, Omitted):
            stats.omit(row)
            continue
        out = records(format, row)
        stats.add(row, len(out), None if out else why_skipped(format, row))
        for row_id, record in out:
            encoded = _line(record)
            digest.update(encoded)
            data.write(encoded)
            sidecar.write(_line(provenance(row, row_id, line)))
            line += 1
    return digest.hexdigest()


def _write_data(
    out_dir: Path, format: str, rows: Iterable[PreferenceRow | Omitted], stats: CardStats
) -> str:
    # Written under temporary names and renamed at the end, so an export that fails half-way
    # (a bad row, a dropped database cursor) never leaves a plausible-looking truncated file.
    data_path, sidecar_path = out_dir / DATA_FILE, out_dir / PROVENANCE_FILE
    data_tmp = data_path.with_name(DATA_FILE + _PARTIAL)
    sidecar_tmp = sidecar_path.with_name(PROVENANCE_FILE + _PARTIAL)
    try:
        with data_tmp.open("wb") as data, sidecar_tmp.open("wb") as sidecar:
            sha256 = _stream(format, rows, data, sidecar, stats)
        os.replace(data_tmp, data_path)
        os.replace(sidecar_tmp, sidecar_path)
    finally:
        data_tmp.unlink(missing_ok=True)
        sidecar_tmp.unlink(missing_ok=True)
    return sha256


def write_export(
    out_dir: Path,
    flt: ExportFilter,
    rows: Iterable[PreferenceRow | Omitted],
    reviewers: Mapping[str, ReviewerProfile],
    guidelines: Mapping[str, str],
    *,
    exported_by: str,
    export_id: str,
    exported_at: datetime | None = None,
    scope: ExportScope | None = None,
) -> ExportSummary:
    """Export ``rows`` (already selected by ``flt``, which the card records) in ``flt.format``.

    ``guidelines`` maps a guideline revision to its text, which the card quotes in full;
    ``scope`` counts what the filter reached in the database, so the card can say what it left
    out (without it, the card says only what the rows show).
    """
    if flt.format not in FORMATS:
        raise ValueError(f"unknown export format {flt.format!r}; expected one of {FORMATS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = CardStats(format=flt.format)
    sha256 = _write_data(out_dir, flt.format, rows, stats)
    known = scope or ExportScope(
        items=stats.rows_in, judgments=stats.rows_in, in_window=stats.rows_in
    )
    unfinished, partial_included = unfinished_counts(known, flt)
    reasons = {"unfinished": unfinished, **_omitted_counts(stats)}
    omitted = stats.omitted_phrases()
    nothing = (
        None
        if stats.records_out
        else why_empty(known, flt, stats.rows_in, stats.skipped, omitted)
    )
    card = dataset_card(
        stats,
        flt,
        reviewers,
        guidelines,
        export_id=export_id,
        exported_by=exported_by,
        exported_at=exported_at or datetime.now(UTC),
        scope=scope,
        nothing_exported=nothing,
    )
    (out_dir / CARD_FILE).write_text(card, encoding="utf-8")
    return ExportSummary(
        export_id=export_id,
        format=flt.format,
        rows_in=stats.rows_in,
        records_out=stats.records_out,
        skipped=stats.rows_in - stats.rows_out,
        path=out_dir,
        files=[DATA_FILE, PROVENANCE_FILE, CARD_FILE],
        sha256=sha256,
        nothing_exported=nothing,
        left_out={k: sum(r[k] for r in reasons.values()) for k in ("judgments", "items")},
        left_out_reasons=reasons,
        partial_included=partial_included,
        left_out_notes=omitted,
    )


def _omitted_counts(stats: CardStats) -> dict[str, dict[str, int]]:
    return {
        r: {"judgments": stats.omitted[r], "items": stats.omitted_items[r]} for r in OMISSIONS
    }
