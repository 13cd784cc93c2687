"""A matching copy of a text that defeats cheap evasions, with a map back to the original.

Detectors that look for words run their patterns over this copy so that "ɡuаrаnteed"
(Cyrillic and IPA letters), "guar\u200banteed" (a zero-width space) or "ＧＵＡＲＡＮＴＥＥＤ"
(fullwidth) match like the plain word. Findings must still point into the text the gateway was
given, so every character of the copy remembers which original character produced it.
"""

# The homoglyph tables below are, by design, full of characters that look like Latin ones.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import unicodedata
from types import MappingProxyType

# Characters that render as nothing: they split words for a matcher but not for a reader.
_INVISIBLE = frozenset(
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # Arabic letter mark
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u180e"  # Mongolian vowel separator
    "\u200b\u200c\u200d"  # zero-width space, non-joiner, joiner
    "\u200e\u200f"  # left-to-right and right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner and invisible operators
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\ufeff"  # byte order mark / zero-width no-break space
)

# Unicode tag characters (they can smuggle a whole hidden ASCII message) and variation selectors.
_INVISIBLE_RANGES = ((0xE0000, 0xE007F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))

# Capitals are mapped before case folding: Greek "Ν" looks like Latin N, while its folded
# form "ν" looks like v, so folding first would turn "ΝΟ" into "vo".
_UPPER_HOMOGLYPHS = MappingProxyType(
    {
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
        "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
        "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D",
        "Ԛ": "Q", "Ԝ": "W", "Ү": "Y", "Һ": "H", "Ӏ": "I",
    }
)  # fmt: skip

_LOWER_HOMOGLYPHS = MappingProxyType(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j",
        "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "һ": "h", "ӏ": "l", "ѡ": "w", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ϳ": "j", "ω": "w",
        # Latin look-alikes outside ASCII
        "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i", "ʏ": "y", "ℓ": "l",
    }
)  # fmt: skip


def is_invisible(char: str) -> bool:
    """Whether ``char`` renders as nothing and so can hide inside a word."""
    if char in _INVISIBLE:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def fold_char(char: str) -> str:
    """The matching form of one character: NFKC, no accents, case folded, homoglyphs to Latin.

    Accents are dropped because stacked combining marks ("ì̷g̷n̷o̷r̷e̷") are a cheap way to
    hide a word; a detector's own terms go through the same folding, so nothing is lost.
    """
    if is_invisible(char):
        return ""
    char = _UPPER_HOMOGLYPHS.get(char, char)
    decomposed = unicodedata.normalize("NFKD", char)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = unicodedata.normalize("NFKC", stripped).casefold()
    return "".join(_LOWER_HOMOGLYPHS.get(c, c) for c in folded if not is_invisible(c))


def normalize(text: str) -> tuple[str, list[int]]:
    """The matching copy of ``text`` and, per copy character, the original index it came from.

    The map has one extra entry, ``len(text)``, so an end offset equal to the copy's length
    maps too. Each original character is folded on its own, which keeps the map exact.
    Not cached here: a cache keyed by the text would keep what users wrote in memory; each
    rule's findings are cached by the text's digest instead (``CompiledRule.find``).
    """
    if text.isascii():  # no Unicode tables apply: each character is itself, lower-cased
        return text.lower(), list(range(len(text) + 1))
    pieces: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isascii() and not char.isupper():
            # The common case needs no Unicode tables.
            pieces.append(char)
            origin.append(index)
            continue
        folded = fold_char(char)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    origin.append(len(text))
    return "".join(pieces), origin


def to_original(origin: list[int], start: int, end: int) -> tuple[int, int]:
    """Map ``copy[start:end]`` to the smallest original span that produced it.

    The end is taken from the last copied character rather than ``origin[end]`` so that
    invisible characters after a match are not swept into it.
    """
    if end <= start:
        return origin[start], origin[start]
    return origin[start], origin[end - 1] + 1
