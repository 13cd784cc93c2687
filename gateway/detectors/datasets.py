"""Labelled examples for training and measuring the shipped detectors.

Two kinds of source, read where they live and never copied into the repository:

- the public sets in the shared data folder (``../shared/data`` beside the checkout, or
  ``--data``): S-Labs and neuralchemy prompt injection (train/validation/test splits), BIPIA's
  attack instructions (training side only), XSTest's safe prompts and JailbreakBench's benign
  behaviours (measurement only);
- the examples the project writes itself, ``gateway/detectors/data/*.jsonl`` (``text``, ``label``,
  ``lang``, ``kind``, ``source``), split into train and validation by a salted digest of the
  text, so the split is fixed and adding an example never moves another one.

The held-out sets under ``evals/`` are not read here: nothing that trains or picks a
threshold may see them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the folder of the project's own labelled examples
PROJECT_DATA = Path(__file__).resolve().parent / "data"

INJECTION_SETS = ("s-labs", "neuralchemy")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int
    #: the dataset it came from (``s-labs``, ``neuralchemy``, ``situate-written``, ``review``, ...)
    source: str
    lang: str = "en"
    kind: str = ""
    #: where it came from beyond the dataset name (a judgment id, a reviewer), for the card
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)


class DataMissing(FileNotFoundError):
    """A dataset the command needs is not where it was looked for."""


def default_shared_data() -> Path:
    """``shared/data`` beside the checkout, else ``/work/shared/data``."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside if beside.is_dir() else Path("/work/shared/data")


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataMissing(f"{path} not found (pass --data with the shared data folder)")
    return path


def s_labs(data: Path, split: str) -> list[Example]:
    """S-Labs prompt-injection (MIT): ``train``, ``validation`` or ``test``."""
    path = _require(data / "prompt-injection" / "s-labs" / f"{split}.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Example(row["text"], int(row["label"]), "s-labs") for row in rows if row["text"]]


def neuralchemy(data: Path, split: str) -> list[Example]:
    """neuralchemy core (Apache-2.0): ``train``, ``validation`` or ``test``; needs pyarrow."""
    import pyarrow.parquet as pq  # the train extra: only commands that read parquet need it

    path = _require(data / "prompt-injection" / "neuralchemy" / f"core-{split}.parquet")
    rows = pq.read_table(path, columns=["text", "label", "category"]).to_pylist()
    return [
        Example(row["text"], int(row["label"]), "neuralchemy", kind=row["category"] or "")
        for row in rows
        if row["text"]
    ]


def bipia_attacks(data: Path) -> list[Example]:
    """BIPIA's code-attack instructions of the training half (MIT), as attacks.

    Its text attacks are left out: most are ordinary requests ("What is the capital of
    Brazil?") that are attacks only when smuggled into a document, and as standalone
    positives they would teach the model to stop ordinary questions.
    """
    path = _require(data / "bipia" / "code_attack_train.json")
    groups: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))
    return [
        Example(text, 1, "bipia", kind=f"code-attack:{name}")
        for name, texts in groups.items()
        for text in texts
    ]


def xstest_safe(data: Path) -> list[Example]:
    """XSTest's 250 safe prompts that look unsafe (CC-BY-4.0): measurement only."""
    path = _require(data / "over-refusal" / "xstest_prompts.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] == "safe"]
    return [Example(row["prompt"], 0, "xstest", kind=row["type"]) for row in rows]


def jailbreakbench_benign(data: Path) -> list[Example]:
    """JailbreakBench's 100 benign behaviours (MIT): measurement only."""
    path = _require(data / "jailbreakbench" / "benign-behaviors.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Example(row["goal"], 0, "jailbreakbench", kind=row["category"]) for row in rows]


def read_jsonl(path: Path, source: str | None = None) -> list[Example]:
    """The project's JSONL examples: ``text``, ``label`` (0/1), optional ``lang``, ``kind``."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(
                Example(
                    str(row["text"]),
                    int(row["label"]),
                    source or str(row.get("source") or "situate-written"),
                    lang=str(row.get("lang") or "en"),
                    kind=str(row.get("kind") or ""),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an example ({exc})") from exc
    return examples


def project_examples(name: str, folder: Path = PROJECT_DATA) -> list[Example]:
    """The project's own examples for a model: ``<name>.jsonl`` and ``<name>-*.jsonl``."""
    if not folder.is_dir():
        return []
    paths = sorted({*folder.glob(f"{name}.jsonl"), *folder.glob(f"{name}-*.jsonl")})
    return [example for path in paths for example in read_jsonl(path)]


def in_validation(text: str, share: float, salt: str = "situate-split-1") -> bool:
    """A fixed split: the salted digest of the text decides, never the order of the file."""
    digest = hashlib.sha256(f"{salt}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split(examples: Iterable[Example], share: float = 0.3) -> tuple[list[Example], list[Example]]:
    """(train, validation) by :func:`in_validation`."""
    train: list[Example] = []
    validation: list[Example] = []
    for example in examples:
        (validation if in_validation(example.text, share) else train).append(example)
    return train, validation


def dedupe(examples: Iterable[Example], against: Sequence[Example] = ()) -> list[Example]:
    """The examples with no text seen before (in the list or in ``against``)."""
    seen = {example.text.strip().casefold() for example in against}
    kept = []
    for example in examples:
        key = example.text.strip().casefold()
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept


def template_key(text: str, prefix: int = 120) -> str:
    """The start of a text, casefolded with its spaces collapsed: rows that share it are the
    same prompt template with another ending."""
    return " ".join(text.casefold().split())[:prefix]


def contradictions(examples: Iterable[Example]) -> set[str]:
    """The template keys labelled both ways (an attack template whose rows a dataset also
    labels benign): such rows cannot train a label or set a threshold."""
    labels: dict[str, set[int]] = {}
    for example in examples:
        labels.setdefault(template_key(example.text), set()).add(example.label)
    return {key for key, seen in labels.items() if len(seen) > 1}


def without(examples: Iterable[Example], keys: set[str]) -> list[Example]:
    """The examples whose template key is not in ``keys``."""
    return [example for example in examples if template_key(example.text) not in keys]
