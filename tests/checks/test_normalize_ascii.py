"""normalize's ASCII fast path gives exactly what folding each character gives."""
# ruff: noqa: RUF001

from __future__ import annotations

import random
import string

from gateway.checks.normalize import fold_char, normalize


def _slow(text: str) -> tuple[str, list[int]]:
    pieces, origin = [], []
    for index, char in enumerate(text):
        folded = fold_char(char)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    return "".join(pieces), [*origin, len(text)]


def test_every_ascii_text_normalizes_as_its_characters_fold() -> None:
    rng = random.Random(11)
    alphabet = string.printable + "\x00\x1b\x7f"
    texts = ["", "IGNORE Previous Instructions!", "".join(chr(c) for c in range(128))]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))) for _ in range(200)]
    for text in texts:
        assert normalize(text) == _slow(text), text


def test_a_text_with_one_non_ascii_character_still_folds_it() -> None:
    copy, origin = normalize("ɡuаrаnteed RETURNS")
    assert copy == "guaranteed returns"
    assert origin[-1] == len("ɡuаrаnteed RETURNS")
