"""Topic scope: is a request about what this deployment is for?

The default classifier is lexical and fast: each topic's name, description and examples make
a vocabulary of word stems; a message's score for a topic is the share of its content words
found there. A semantic classifier (sentence embeddings) is the optional ``semantic`` extra.
"""

from __future__ import annotations

import re

from gateway.policy.compiled import ScopeClassifier
from gateway.policy.schema import Scope, Topic

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves please thanks thank hi hello hey want need like know tell get make help one also
    may might must shall let us im ive id dont cant wont""".split()  # noqa: SIM905 (a word list reads better as text)
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_stems(text: str) -> list[str]:
    words = (w.casefold() for w in _WORD.findall(text))
    return [stem(w) for w in words if w not in _STOPWORDS and len(w) > 1]


class LexicalScope:
    def __init__(self, topics: list[Topic], min_words: int) -> None:
        self._min_words = min_words
        self._vocabularies = [
            (
                topic.name,
                frozenset(
                    content_stems(
                        " ".join([topic.name.replace("-", " "), topic.description, *topic.examples])
                    )
                ),
            )
            for topic in topics
        ]

    def classify(self, text: str) -> tuple[str | None, float]:
        words = content_stems(text)
        if len(words) < self._min_words:
            return None, 1.0  # too short to judge: a greeting or a follow-up
        best: tuple[str | None, float] = (None, 0.0)
        for name, vocabulary in self._vocabularies:
            score = sum(word in vocabulary for word in words) / len(words)
            if score > best[1]:
                best = (name, score)
        return best


def build_scope(scope: Scope) -> ScopeClassifier | None:
    if not scope.topics or scope.out_of_scope == "allow":
        return None
    if scope.classifier == "semantic":
        from gateway.policy.semantic import SemanticScope

        return SemanticScope(scope.topics, scope.min_words)
    return LexicalScope(scope.topics, scope.min_words)
