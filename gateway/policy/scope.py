"""Topic scope: is a request about what this deployment is for?

The default classifier is semantic (``gateway.policy.semantic``: sentence embeddings of each
topic's description, examples and counter-examples, multilingual). The lexical classifier
here is the no-model fallback (``scope.classifier: lexical``): each topic's name, description
and examples make a vocabulary of word stems; a message's score for a topic is the share of
its content words found there. It is fast and needs no model, but it reads English word
forms only and refuses what is said in other words (``docs/scope.md``).
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


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def word_count(text: str) -> int:
    """Words in any script: runs of letters, and for Chinese, Japanese and Korean (written
    without spaces) one word for every two characters."""
    return max(len(_WORD.findall(text)), len(_CJK.findall(text)) // 2)


def too_short(scope: Scope, text: str) -> bool:
    """Whether a text is too short for the scope to judge (a greeting, "thanks", "yes
    please"): fewer than ``min_words`` content words for the lexical classifier, fewer than
    ``min_words`` words of any kind for the semantic one, which reads whole sentences."""
    if scope.classifier == "semantic":
        return word_count(text) < scope.min_words
    return len(content_stems(text)) < scope.min_words


def content_stems(text: str) -> list[str]:
    words = (w.casefold() for w in _WORD.findall(text))
    return [stem(w) for w in words if w not in _STOPWORDS and len(w) > 1]


class LexicalScope:
    heavy = False

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

        # the encoder loads once a process (about 2 s), the topics once a revision, both in
        # the background from now
        return SemanticScope(scope.topics, scope.min_words, scope.margin, warm=True)
    return LexicalScope(scope.topics, scope.min_words)
