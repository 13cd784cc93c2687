"""Labelled datasets for ``gateway policy eval``: which rows, which side each is on, which language.

A dataset is a file (CSV, JSONL, JSON or parquet) and how to read it: the text column, the
label column and the label values of the harmful side, or a fixed side for a file that holds
one side only (JailbreakBench's harmful behaviours, BIPIA's attacks), and the language column
when there is one. A JSON object of lists of strings (BIPIA's ``{category: [attack, …]}``)
reads as rows with ``text`` and ``group``. Several datasets at once come from a manifest
(YAML or JSON: a list of the same fields), which also carries each one's source and license.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from gateway.policy.actions import Stage

DEFAULT_POSITIVE = "1,true,yes,harmful,unsafe,injection,jailbreak,positive"
TEXT_COLUMNS = ("text", "prompt", "full_text", "goal")
Side = Literal["harmful", "benign"]


class DatasetError(ValueError):
    """A dataset cannot be read as asked; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    harmful: bool
    lang: str | None = None
    #: the value of the dataset's ``by`` column (a category, a kind), for a table of its own
    group: str | None = None
    #: the record as read, for span-labelled sets (``spans``) and anything else a reader needs
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    path: Path
    name: str = ""
    text_column: str | None = None
    #: ``none``: no labels, every row on ``side`` (benign unless said otherwise)
    label_column: str | None = None
    positive: str = DEFAULT_POSITIVE
    side: Side | None = None
    lang_column: str | None = None
    #: a column to break the figures down by as well (``category``, ``kind``)
    by: str | None = None
    stage: str = "input"
    scope: bool = True
    limit: int | None = None
    source: str | None = None
    license: str | None = None

    def __post_init__(self) -> None:
        if self.side not in (None, "harmful", "benign"):
            raise DatasetError(f"{self.path}: side is harmful or benign, not {self.side!r}")
        if self.stage not in (Stage.INPUT, Stage.OUTPUT):
            raise DatasetError(f"{self.path}: stage is input or output, not {self.stage!r}")

    @property
    def title(self) -> str:
        return self.name or self.path.name


def read_records(path: Path) -> list[dict[str, Any]]:
    """The file's records, by its suffix; parquet needs pyarrow (the ``train`` extra)."""
    if path.suffix == ".parquet":
        return _parquet(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        return [{"text": item, "group": key} for key, items in data.items() for item in items]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of records or an object of lists")
    return data


def _parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError(
            f"{path}: reading parquet needs pyarrow: pip install 'situate[train]'"
        ) from exc
    records: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return records


def _pick(path: Path, row: dict[str, Any], wanted: str | None) -> Any:
    for key in (wanted,) if wanted else TEXT_COLUMNS:
        if key in row:
            return row[key]
    raise DatasetError(f"{path}: no column among {wanted or TEXT_COLUMNS}; columns: {list(row)}")


def _value(record: dict[str, Any], column: str | None) -> str | None:
    value = record.get(column) if column else None
    return None if value in (None, "") else str(value)


def load_rows(spec: DatasetSpec) -> list[Row]:
    """Each row's text, whether it is on the harmful side, and its language if known."""
    records = read_records(spec.path)[: spec.limit]
    positives = {v.strip().lower() for v in spec.positive.split(",")}
    label = spec.label_column or "label"
    lang = spec.lang_column or ("lang" if records and "lang" in records[0] else None)
    rows = []
    for record in records:
        if spec.side is not None or spec.label_column == "none":
            harmful = spec.side == "harmful"
        elif label not in record and "spans" in record:  # span-labelled: judged per rule
            harmful = bool(record["spans"])
        elif label not in record:
            raise DatasetError(
                f"{spec.path}: no label column {label!r} (columns: {list(record)});"
                " give --label-column, or --side for a file of one side"
            )
        else:
            harmful = str(record[label]).strip().lower() in positives
        rows.append(
            Row(
                str(_pick(spec.path, record, spec.text_column)),
                harmful,
                _value(record, lang),
                _value(record, spec.by),
                record,
            )
        )
    return rows


_SPEC_FIELDS = frozenset(DatasetSpec.__dataclass_fields__) - {"path"}


def load_manifest(path: Path) -> list[DatasetSpec]:
    """Dataset specs from a YAML or JSON list; relative paths are relative to the manifest."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: a manifest is a list of datasets")
    specs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "path" not in entry:
            raise DatasetError(f"{path}: dataset {index + 1} needs a path")
        unknown = set(entry) - _SPEC_FIELDS - {"path"}
        if unknown:
            raise DatasetError(f"{path}: dataset {index + 1}: unknown fields {sorted(unknown)}")
        where = Path(entry["path"])
        specs.append(
            DatasetSpec(
                path=where if where.is_absolute() else path.parent / where,
                **{k: v for k, v in entry.items() if k != "path"},
            )
        )
    return specs


def missing(specs: Sequence[DatasetSpec]) -> list[Path]:
    return [spec.path for spec in specs if not spec.path.is_file()]
