"""``keywords``: listed words and phrases, found through spacing, homoglyph and case evasions.

Terms are matched on the normalised copy of the text (see ``normalize``) as whole words: the
letters of a term may be separated by a few spaces or punctuation characters ("g u a r a n t e e
d", "guar.anteed", "you  should   buy"), but a term never matches inside a longer word ("buy" is
not in "buyer").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from gateway.checks.base import CheckConfigError, Finding
from gateway.checks.normalize import normalize, to_original
from gateway.checks.params import StrictParams, parse_params

# Separators tolerated between two letters of one word, and between the words of a phrase.
_INNER_GAP = r"([\W_]{0,3})"
_WORD_GAP = r"([\W_]{0,6})"
_NOT_AFTER_WORD = r"(?<![^\W_])"
_NOT_BEFORE_WORD = r"(?![^\W_])"
_WORD_SPLIT = re.compile(r"[\W_]+")
_WHITESPACE = re.compile(r"\s")
# A spaced-out term ("b u y") continues when a lone letter follows or precedes it ("b u y e r").
# Only the same separator counts: in "x b-u-y" the "x" is a word of its own.
_SPACED_BEFORE = re.compile(r"(?:^|[\W_])[^\W_]([\W_]{1,3})$")
_SPACED_AFTER = re.compile(r"^([\W_]{1,3})[^\W_](?:[\W_]|$)")


class KeywordParams(StrictParams):
    terms: list[str] = Field(min_length=1)
    label: str = Field(default="keyword", min_length=1)


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    pattern: re.Pattern[str]
    # indices (into the match's groups) of the gaps that fall inside a word of the term
    inner: tuple[int, ...]


def _compile_term(term: str) -> _Term:
    words = [word for word in _WORD_SPLIT.split(normalize(term)[0]) if word]
    if not words:
        raise CheckConfigError(f"keywords: term {term!r} has no letters or digits")
    parts: list[str] = []
    inner: list[int] = []
    gap = 0
    for number, word in enumerate(words):
        if number:
            parts.append(_WORD_GAP)
            gap += 1
        for position, letter in enumerate(word):
            if position:
                parts.append(_INNER_GAP)
                inner.append(gap)
                gap += 1
            parts.append(re.escape(letter))
    pattern = re.compile(_NOT_AFTER_WORD + "".join(parts) + _NOT_BEFORE_WORD)
    return _Term(term, pattern, tuple(inner))


def _acceptable(term: _Term, match: re.Match[str], copy: str) -> bool:
    """Whether the separators inside the match look like an evasion rather than two words.

    "guar.anteed" (punctuation only) and "g u a r" (every letter spaced) are evasions; "a ss"
    is two words that happen to spell a term.
    """
    gaps = [match.group(index + 1) for index in term.inner]
    used = [gap for gap in gaps if gap]
    if not used:
        return True
    if len(used) == len(gaps):
        before = _SPACED_BEFORE.search(copy[max(0, match.start() - 6) : match.start()])
        after = _SPACED_AFTER.search(copy[match.end() : match.end() + 6])
        return not any(lone and lone.group(1) in used for lone in (before, after))
    return not any(_WHITESPACE.search(gap) for gap in used)


class KeywordsCheck:
    """Each occurrence of each term, labelled ``keyword:<term>``."""

    name: ClassVar[str] = "keywords"

    def __init__(self, params: Any) -> None:
        if isinstance(params, list):
            params = {"terms": params}
        settings = parse_params(self.name, KeywordParams, params)
        self._terms = tuple(_compile_term(term) for term in settings.terms)
        self._prefix = settings.label
        longest = max(len(term) for term in settings.terms)
        # Up to three separators per letter in the copy, plus room for invisible characters
        # that the copy dropped but the original still holds.
        self._max_span = 8 * longest + 16

    @property
    def max_span(self) -> int:
        return self._max_span

    def find(self, text: str) -> list[Finding]:
        copy, origin = normalize(text)
        findings: list[Finding] = []
        for term in self._terms:
            position = 0
            while (match := term.pattern.search(copy, position)) is not None:
                if _acceptable(term, match, copy):
                    start, end = to_original(origin, match.start(), match.end())
                    findings.append(Finding(start, end, f"{self._prefix}:{term.text}"))
                    position = match.end()
                else:
                    # A rejected match may hide a good one that starts inside it.
                    position = match.start() + 1
        findings.sort(key=lambda finding: (finding.start, finding.end))
        return findings
