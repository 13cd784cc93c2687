"""The project's own labelled data: the training examples the shipped models learn from
(gateway/detectors/data/) and the held-out sets they and the topic scopes are measured on
(evals/). Both parse, carry their fields, and never share a text: a held-out figure is only
honest if nothing it measures was trained or tuned on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAINING = sorted((ROOT / "gateway" / "detectors" / "data").glob("*.jsonl"))
HELD_OUT = sorted((ROOT / "evals").rglob("*.jsonl"))
FIELDS = {"text", "label", "lang", "kind", "source"}


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.name)
def test_training_rows_carry_their_fields(path: Path) -> None:
    rows = _rows(path)
    assert len(rows) >= 100
    for row in rows:
        assert set(row) >= FIELDS, row
        assert row["label"] in (0, 1) and isinstance(row["text"], str) and row["text"].strip()


@pytest.mark.parametrize("path", HELD_OUT, ids=lambda p: str(p.relative_to(ROOT / "evals")))
def test_held_out_rows_parse_and_are_labelled(path: Path) -> None:
    rows = _rows(path)
    assert len(rows) >= 200
    label = "in_scope" if path.parent.name == "scope" else "label"
    assert {type(row[label]) for row in rows} <= {bool} if label == "in_scope" else {int}
    assert all(isinstance(row["text"], str) and row["text"].strip() for row in rows)


def _tuning_texts() -> set[str]:
    texts = {_key(str(row["text"])) for path in TRAINING for row in _rows(path)}
    for policy in (ROOT / "policies").glob("*.yaml"):
        if policy.name.endswith(".tests.yaml"):
            cases = yaml.safe_load(policy.read_text("utf-8")) or {}
            for case in cases.get("cases", []):
                texts |= {_key(str(case[side])) for side in ("input", "output") if side in case}
            continue
        scope = (yaml.safe_load(policy.read_text("utf-8")) or {}).get("scope") or {}
        for topic in scope.get("topics") or []:
            for text in [*topic.get("examples", []), *topic.get("counter_examples", [])]:
                texts.add(_key(text))
    return texts


def test_no_held_out_text_was_trained_or_tuned_on() -> None:
    tuned = _tuning_texts()
    shared = [
        (path.name, row["text"])
        for path in HELD_OUT
        for row in _rows(path)
        if _key(str(row["text"])) in tuned
    ]
    assert not shared, shared
