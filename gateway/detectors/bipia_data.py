"""BIPIA (microsoft/BIPIA, MIT) as training and measuring rows for the tool-result model.

BIPIA's e-mail task gives e-mails (``email-{split}.jsonl``: a ``context``) and attack
instructions by category (``text_attack_{split}.json``, ``code_attack_{split}.json``). An
indirect injection is one of those instructions planted in an e-mail a tool fetched. The
tool-result model reads windows (sentences), so it trains on windows: an attack's sentences
(and the whole attack) are positives, the clean e-mails' sentences negatives. Validation holds
out whole e-mails and whole attack categories (by a salted digest of the e-mail text and of
the category name), so the threshold is chosen on e-mails and kinds of attack training never
saw; the test split only measures.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from gateway.detectors.datasets import Example, in_validation
from gateway.detectors.windows import sentences

POSITIONS = ("start", "middle", "end")
KINDS = ("text", "code")
SOURCE = "bipia"


@dataclass(frozen=True, slots=True)
class Attack:
    kind: str
    category: str
    text: str


def plant(context: str, attack: str, position: str) -> str:
    """The e-mail with the attack inserted at the start, the middle (at the line or sentence
    boundary nearest the middle) or the end, as BIPIA inserts its attacks."""
    if position == "start":
        return f"{attack}\n{context}"
    if position == "end":
        return f"{context}\n{attack}"
    middle = len(context) // 2
    cuts = [i + 1 for i, ch in enumerate(context) if ch == "\n" or context[i : i + 2] == ". "]
    cut = min(cuts, key=lambda i: abs(i - middle), default=middle)
    return f"{context[:cut].rstrip()}\n{attack}\n{context[cut:].lstrip()}"


def emails(data: Path, split: str) -> list[str]:
    """The e-mails' texts (``context``) of one split."""
    path = data / "bipia" / f"email-{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [str(json.loads(line)["context"]) for line in handle if line.strip()]


def attacks(data: Path, split: str, kinds: tuple[str, ...] = KINDS) -> list[Attack]:
    """The attack instructions of one split, text and code, in the files' order."""
    out: list[Attack] = []
    for kind in kinds:
        path = data / "bipia" / f"{kind}_attack_{split}.json"
        groups: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))
        out += [Attack(kind, c, str(t)) for c, texts in groups.items() for t in texts]
    return out


def attack_windows(items: list[Attack]) -> list[Example]:
    """Each attack whole and each of its sentences, as positives."""
    rows: list[Example] = []
    for a in items:
        pieces = dict.fromkeys([a.text, *sentences(a.text)])  # ordered: a seeded run repeats
        rows += [Example(p, 1, SOURCE, kind=f"{a.kind}-attack:{a.category}") for p in pieces]
    return rows


def email_windows(texts: list[str], leave_out: AbstractSet[str] = frozenset()) -> list[Example]:
    """The clean e-mails' sentences, as negatives, but those in ``leave_out``."""
    return [
        Example(s, 0, SOURCE, kind="email")
        for t in texts
        for s in sentences(t)
        if s not in leave_out
    ]


def planted(texts: list[str], items: list[Attack]) -> list[Example]:
    """Every attack in every e-mail, its position rotating (start, middle, end) so each attack
    and each e-mail meets every position; ``kind`` is ``category/position``."""
    rows: list[Example] = []
    for i, a in enumerate(items):
        for j, t in enumerate(texts):
            where = POSITIONS[(i + j) % len(POSITIONS)]
            rows.append(Example(plant(t, a.text, where), 1, SOURCE, kind=f"{a.category}/{where}"))
    return rows


def clean(texts: list[str]) -> list[Example]:
    return [Example(t, 0, SOURCE, kind="clean email") for t in texts]


@dataclass(frozen=True)
class Split:
    """The training split cut in two: e-mails and attack categories for training, the rest
    for choosing the threshold."""

    train_emails: list[str]
    train_attacks: list[Attack]
    held_emails: list[str]
    held_attacks: list[Attack]


def split_train(data: Path, share: float = 0.3) -> Split:
    """The training split's e-mails and attacks, cut in two. BIPIA's e-mail splits share
    e-mails (11 of the test split's 50 are in the training split, word for word), so a
    training e-mail that is also a test e-mail is left out of both sides here."""
    test = set(emails(data, "test"))
    texts = [t for t in emails(data, "train") if t not in test]
    items = attacks(data, "train")
    held_e = [t for t in texts if in_validation(t, share, "bipia-email")]
    held_a = [a for a in items if in_validation(a.category, share, "bipia-category")]
    return Split(
        [t for t in texts if t not in held_e],
        [a for a in items if a not in held_a],
        held_e,
        held_a,
    )


def test_sentences(data: Path) -> set[str]:
    """Every sentence of a test e-mail: none trains (the e-mails share templates)."""
    return {s for t in emails(data, "test") for s in sentences(t)}


def pii_sentences(data: Path) -> list[Example]:
    """The PII samples' texts (generated customer messages and documents): ordinary content a
    tool returns, measurement only."""
    rows: list[Example] = []
    for name in ("generated_small.json", "synth_dataset_v2.json"):
        path = data / "pii" / name
        if path.is_file():
            items = json.loads(path.read_text(encoding="utf-8"))
            rows += [Example(str(r["full_text"]), 0, "pii", kind=name) for r in items]
    return rows
