"""The matching copy: what it folds away, and that every character maps back exactly."""

# Evasion tests are written with the look-alike characters attackers use.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import pytest

from gateway.checks.normalize import fold_char, is_invisible, normalize, to_original


def test_plain_ascii_is_lower_cased_with_an_identity_map() -> None:
    copy, origin = normalize("Buy NOW")
    assert copy == "buy now"
    assert origin == [0, 1, 2, 3, 4, 5, 6, 7]  # one entry per character plus the sentinel


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＧＵＡＲＡＮＴＥＥＤ", "guaranteed"),  # fullwidth, via NFKC
        ("ɡuаrаntееd", "guaranteed"),  # IPA g, Cyrillic а and е
        ("ѕһор", "shop"),  # Cyrillic ѕ һ о р
        ("οκ αν", "ok av"),  # Greek ο κ α ν
        ("ΝΟ", "no"),  # Greek capitals map before folding, so Ν is N, not ν → v
        ("Straße", "strasse"),  # case folding
        ("ﬁne", "fine"),  # ligature, via NFKC
        ("naïve café", "naive cafe"),  # accents dropped
        ("ì̷g̷n̷o̷r̷e̷", "ignore"),  # stacked combining marks
        ("𝐛𝐮𝐲", "buy"),  # mathematical bold, via NFKC
    ],
)
def test_folding(text: str, expected: str) -> None:
    assert normalize(text)[0] == expected


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # zero-width space
        "\u200c",  # zero-width non-joiner
        "\u200d",  # zero-width joiner
        "\u2060",  # word joiner
        "\u00ad",  # soft hyphen
        "\ufeff",  # byte order mark
        "\u202e",  # right-to-left override
        "\u2066",  # left-to-right isolate
        "\U000e0041",  # tag character
        "\ufe0f",  # variation selector
    ],
)
def test_invisible_characters_are_removed_and_skipped_by_the_map(invisible: str) -> None:
    text = f"gu{invisible}ard"
    copy, origin = normalize(text)
    assert is_invisible(invisible)
    assert copy == "guard"
    assert origin == [0, 1, 3, 4, 5, 6]


def test_expansions_map_every_copy_character_to_its_source() -> None:
    text = "Maß!"
    copy, origin = normalize(text)
    assert copy == "mass!"
    assert [text[index] for index in origin[:-1]] == ["M", "a", "ß", "ß", "!"]
    assert origin[-1] == len(text)


def test_to_original_covers_the_source_characters_only() -> None:
    text = "xx g\u200bood\u200b yy"
    copy, origin = normalize(text)
    start = copy.index("good")
    mapped = to_original(origin, start, start + len("good"))
    assert text[mapped[0] : mapped[1]] == "g\u200bood"  # the trailing zero-width space is left out


def test_to_original_of_an_expanded_character_returns_the_whole_character() -> None:
    text = "aßb"
    copy, origin = normalize(text)
    assert copy == "assb"
    assert to_original(origin, 1, 2) == (1, 2)  # half of "ss" is still the one "ß"
    assert to_original(origin, len(copy), len(copy)) == (3, 3)


def test_fold_char_of_an_invisible_is_empty() -> None:
    assert fold_char("\u200b") == ""
    assert fold_char("А") == "a"  # Cyrillic capital A
