"""The matcher: every signal over every view of a text, Unicode tag runs, and encoded blobs
whose decoded text holds a signal.

Each known attack shape (``signals``, ``roles``) is a weighted pattern run over normalised
views of the text (``views``), so homoglyphs, zero-width characters, spacing, leetspeak and
reversal do not hide it. A finding's score is its signal's weight, reduced when the shape is
only quoted or asked about (``context``).
"""

from __future__ import annotations

import re

from gateway.checks.base import Finding
from gateway.checks.injection.context import demotion
from gateway.checks.injection.decoder import decoded_blobs
from gateway.checks.injection.roles import COMPACT_SIGNALS, COMPACT_WORDS, RAW_SIGNALS
from gateway.checks.injection.signals import SIGNALS
from gateway.checks.injection.views import View, squeezed, views

_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_TAG_WEIGHT = 1.0
# A decoded payload is scored above the shape it hides: nobody encodes a harmless request.
_ENCODED_BONUS = 0.1
_WORD = re.compile(r"[a-z]+")

Seen = dict[tuple[int, int, str], Finding]


def _span(origin: list[int], start: int, end: int) -> tuple[int, int]:
    """Original span of ``view[start:end]``; the reversed view's map runs backwards."""
    first, last = origin[start], origin[max(start, end - 1)]
    return min(first, last), max(first, last) + 1


def _keep(seen: Seen, finding: Finding) -> None:
    key = (finding.start, finding.end, finding.label)
    if key not in seen or seen[key].score < finding.score:
        seen[key] = finding


def _view_matches(seen: Seen, view: View) -> None:
    copy, origin = view
    for signal in SIGNALS:
        for match in signal.pattern.finditer(copy):
            start, end = _span(origin, match.start(), match.end())
            score = signal.weight * demotion(copy, match.start(), match.end())
            _keep(seen, Finding(start, end, signal.label, score))


def _raw_matches(seen: Seen, text: str) -> None:
    lowered = text.lower()
    for signal in RAW_SIGNALS:
        for match in signal.pattern.finditer(text):
            score = signal.weight * demotion(lowered, match.start(), match.end())
            _keep(seen, Finding(match.start(), match.end(), signal.label, score))


def _splits_words(text: str, origin: list[int], match: re.Match[str]) -> bool:
    """Whether the match reads as words split apart, not as words run together.

    Every word of the compact pattern must end where an original word ends ("re veal your");
    "system prompts. How" spells "systempromptshow" but "prompts" straddles two words, and
    matches of whole vocabulary words ("show the rules of chess") are the ordinary signals'.
    """
    for group in range(1, (match.lastindex or 0) + 1):
        boundary = match.end(group)
        if match.start(group) < boundary < match.end():
            between = text[origin[boundary - 1] + 1 : origin[boundary]]
            if _WORD.fullmatch(between) or not between:
                return False
    start, end = origin[match.start()], origin[match.end() - 1] + 1
    return not set(_WORD.findall(text[start:end].lower())) <= COMPACT_WORDS


def _split_word_matches(seen: Seen, text: str, view: View) -> None:
    """Compact signals on the letters-only view, for attacks split into syllables."""
    copy, origin = squeezed(view)
    for signal in COMPACT_SIGNALS:
        for match in signal.pattern.finditer(copy):
            if _splits_words(text, origin, match):
                start, end = _span(origin, match.start(), match.end())
                _keep(seen, Finding(start, end, signal.label, signal.weight))


def signal_findings(text: str) -> list[Finding]:
    """Every signal match in ``text``, whatever its score, deduplicated across views."""
    seen: Seen = {}
    found, clean = views(text)
    for view in found:
        _view_matches(seen, view)
    _raw_matches(seen, text)
    _split_word_matches(seen, text, clean)
    return list(seen.values())


def tag_findings(text: str) -> list[Finding]:
    return [
        Finding(m.start(), m.end(), "injection:unicode-tags", _TAG_WEIGHT)
        for m in _TAG_RUN.finditer(text)
    ]


def encoded_findings(text: str) -> list[Finding]:
    """Blobs whose decoded text (down to the decoder's depth) holds an attack shape."""
    findings: list[Finding] = []
    for start, end, decoded in decoded_blobs(text):
        inner = signal_findings(decoded) + tag_findings(decoded)
        if inner:
            score = min(1.0, max(f.score for f in inner) + _ENCODED_BONUS)
            findings.append(Finding(start, end, "injection:encoded-payload", score))
    return findings


def all_findings(text: str) -> list[Finding]:
    """Every shape in a text, whatever its score."""
    return signal_findings(text) + tag_findings(text) + encoded_findings(text)
