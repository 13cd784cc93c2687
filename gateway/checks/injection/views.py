"""Matching views of a prompt for the injection heuristics, each with a map to the original.

The first view is ``normalize``'s copy (homoglyphs, invisible characters, case). A second view
undoes the spelling tricks attack prompts use and ordinary prose does not: leetspeak inside
words ("1gn0r3"), letters spaced out ("i g n o r e"), punctuation inside words ("ign.ore"),
underscored identifiers ("reveal_system_prompt") and stretched letters ("priiiior").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType

from gateway.checks.normalize import normalize

View = tuple[str, list[int]]

_LEET = MappingProxyType(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "|": "l"}
)
_LEET_TOKEN = re.compile(r"[\w@$|]+")
_HAS_LETTER = re.compile(r"[a-z]")
_UNDERSCORE = re.compile(r"_+|\\[nrt]")
_INNER_PUNCTUATION = re.compile(r"(?<=[a-z])[.\-*`~^'\u2019]+(?=[a-z])")
# Three or more single letters separated by one space or dot: "i g n o r e".
_SPACED_LETTERS = re.compile(r"(?<![\w])[a-z](?:[ .][a-z](?![\w])){2,}")
_STRETCHED = re.compile(r"([a-z])\1{2,}")


def _substitute(view: View, pattern: re.Pattern[str], replace: Callable[[str], str]) -> View:
    """``pattern.sub`` that keeps the map: replacement characters map to the match's start."""
    text, origin = view
    pieces: list[str] = []
    mapped: list[int] = []
    last = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        pieces.append(text[last:start])
        mapped.extend(origin[last:start])
        replacement = replace(match.group())
        pieces.append(replacement)
        # Characters that replace 1:1 keep their own origin; extra ones share the last.
        mapped.extend(origin[min(start + offset, end - 1)] for offset in range(len(replacement)))
        last = end
    pieces.append(text[last:])
    mapped.extend(origin[last:])
    return "".join(pieces), mapped


def _deleet(token: str) -> str:
    # Only tokens that mix letters with leet characters; numbers ("2024", "$5") stay as they are.
    if _HAS_LETTER.search(token) is None:
        return token
    return "".join(_LEET.get(char, char) for char in token)


def _join_letters(run: str) -> str:
    return run.replace(" ", "").replace(".", "")


def deobfuscated(view: View) -> View:
    """The view with leetspeak, spacing, inner punctuation and stretched letters undone."""
    view = _substitute(view, _UNDERSCORE, lambda _: " ")
    view = _substitute(view, _LEET_TOKEN, _deleet)
    view = _substitute(view, _INNER_PUNCTUATION, lambda _: "")
    view = _substitute(view, _SPACED_LETTERS, _join_letters)
    return _substitute(view, _STRETCHED, lambda run: run[0])


_NON_LETTER = re.compile(r"[^a-z]+")


def squeezed(view: View) -> View:
    """The view with everything but letters removed, for words split apart ("ig nore")."""
    return _substitute(view, _NON_LETTER, lambda _: "")


def reversed_view(view: View) -> View:
    """The view read backwards ("snoitcurtsni suoiverp erongi"), its map reversed with it."""
    text, origin = view
    return text[::-1], [*origin[-2::-1], origin[-1]]


def views(text: str) -> tuple[list[View], View]:
    """The views to run the signals over, and the de-obfuscated one among them.

    They are the normalised view, the de-obfuscated one when it differs, and the latter read
    backwards: one more pass, but no false alarms, since reversed prose is not English.
    """
    base = normalize(text)
    clean = deobfuscated(base)
    found = [base] if clean[0] == base[0] else [base, clean]
    return [*found, reversed_view(clean)], clean
