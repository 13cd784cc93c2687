"""Topic scope: is a request about what this deployment is for?

The default classifier is semantic (``gateway.policy.semantic``: sentence embeddings of each
topic's description, examples and counter-examples, multilingual). The lexical classifier
here is the no-model fallback (``scope.classifier: lexical``): each topic's name, description
and examples make a vocabulary of word stems; a message's score for a topic is the share of
its content words found there. It is fast and needs no model, but it reads English word
forms only and refuses what is said in other words (``docs/scope.md``).
"""

from __future__ import annotations

from gateway.policy.compiled import ScopeClassifier
from gateway.policy.schema import Scope, Topic
from gateway.policy.words import content_stems, word_count


def too_short(scope: Scope, text: str) -> bool:
    """Whether a text is too short for the scope to judge (a greeting, "thanks", "yes
    please"): fewer than ``min_words`` content words for the lexical classifier, fewer than
    ``min_words`` words of any kind for the semantic one, which reads whole sentences."""
    if scope.classifier == "semantic":
        return word_count(text) < scope.min_words
    return len(content_stems(text)) < scope.min_words


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
