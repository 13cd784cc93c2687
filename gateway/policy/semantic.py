"""Semantic topic scope: how near a message is to what each topic is about.

Each topic's description and examples, and every counter-example, are embedded once per
policy revision (on first use) with the multilingual sentence encoder
(``gateway.detectors.embedding``, Google's USE v3: 16 languages, pure numpy, bundled
weights, nothing downloaded). A message is then embedded (about 3 ms for a short one, 10 ms
at 500 characters, on one core) and compared by cosine similarity:

- ``near``: for each topic, the mean similarity of the topic's two texts (description and
  examples) nearest the message; the best topic's;
- ``counter``: the mean similarity of the two counter-examples nearest the message.

Its score is ``near`` when it is nearer a topic than the counter-examples by at least the
policy's ``margin``, and 0 otherwise: a message that resembles what the deployment does *not*
do is out of scope however close it is to a topic. The policy's ``threshold`` is the least
``near`` a message needs to be in scope; ``docs/scope.md`` says how to choose both.
Taking two texts rather than one makes a message that shares one example's phrasing ("how
many calories are in a banana", "how much money is in my account") count for less than one
that resembles the topic twice.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.detectors.embedding import (
    DIMENSIONS,
    SentenceEncoder,
    Vectors,
    digest,
    shared_encoder,
)
from gateway.detectors.model import bounded, charge_scan, need_model
from gateway.policy.schema import Topic
from gateway.policy.words import word_count

_log = logging.getLogger(__name__)

#: how many of the nearest texts are averaged, per topic and for the counter-examples
NEAREST = 2
#: the most of a message the scope reads (its head and tail beyond): one long message costs
#: the encoder no more than this
READ_LIMIT = 2000
#: how many of classify's answers are kept (by digest)
_ANSWERS = 4096
#: Conversational turns that carry no subject of their own: the scope judges only the last
#: user message, so "thanks, that helped" or "what do you mean?" must not be refused as off
#: topic. A message at least this similar to one of them (and nearer to it than to any topic)
#: is not judged, as a too-short one is not.
FOLLOW_UPS = (
    "thanks, that helped a lot",
    "great, thank you very much",
    "what do you mean",
    "can you explain that again",
    "can you say it more simply",
    "tell me more",
    "sorry, I don't understand",
    "no, that's not what I asked",
    "ok, what should I do next",
    "yes please do that",
    "is there anything else I should know",
    "and what about the second one",
)
FOLLOW_UP_SIMILARITY = 0.6


@dataclass(frozen=True, slots=True)
class Reading:
    """What the semantic scope saw in a message (``gateway policy explain`` shows it)."""

    topic: str
    near: float
    #: the topic's text nearest the message
    nearest: str
    counter: float | None
    nearest_counter: str | None
    score: float
    #: similarity to the nearest subject-less conversational turn (``FOLLOW_UPS``)
    follow_up: float = 0.0

    @property
    def countered(self) -> bool:
        """Whether the counter-examples put the message out of scope."""
        return self.score == 0.0 and self.counter is not None and self.near > 0


def anchor_texts(topic: Topic) -> list[str]:
    """The texts a topic is embedded as: its description (named) and its examples."""
    name = topic.name.replace("-", " ").replace("_", " ")
    head = f"{name}: {topic.description}" if topic.description else name
    return [head, *topic.examples]


def score(near: float, counter: float | None, margin: float = 0.0) -> float:
    """``near`` (clipped to [0, 1]), or 0 when the counter-examples are within ``margin``."""
    if counter is not None and near - counter < margin:
        return 0.0
    return max(0.0, min(1.0, near))


def _nearest(similarities: Vectors) -> tuple[float, int]:
    """The mean of the ``NEAREST`` highest similarities, and the index of the highest."""
    top = np.sort(similarities)[::-1][:NEAREST]
    return float(top.mean()), int(similarities.argmax())


@dataclass(frozen=True, slots=True)
class _Anchors:
    topic: str
    texts: tuple[str, ...]
    vectors: Vectors


@dataclass(frozen=True, slots=True)
class _Embedded:
    """A policy revision's texts as vectors: read-only, shared by every classifying thread."""

    encoder: SentenceEncoder
    topics: tuple[_Anchors, ...]
    counter_texts: tuple[str, ...]
    counters: Vectors
    follow_ups: Vectors


def _embed(encoder: SentenceEncoder, texts: Sequence[str]) -> Vectors:
    if not texts:
        return np.zeros((0, DIMENSIONS), np.float32)
    vectors = encoder.encode(texts)
    vectors.flags.writeable = False
    return vectors


class SemanticScope:
    """The semantic classifier of one policy revision. The encoder is loaded (once a process,
    about 2 s) and the topics embedded (once a revision) in a background thread started when
    the policy is compiled, so compiling never waits for a model (``gateway keys create``
    does not), and a server has it ready by its first request; ``classify`` (or
    ``prepare()``) waits for it if it is not done yet."""

    #: inference: the pipeline runs a policy with this scope off the event loop (contracts 4)
    heavy = True

    def __init__(
        self,
        topics: list[Topic],
        min_words: int,
        margin: float = 0.0,
        encoder: SentenceEncoder | None = None,
        *,
        warm: bool = False,
    ) -> None:
        self._min_words = min_words
        self._margin = margin
        self._topic_specs = tuple(topics)
        self._encoder = encoder
        self._embedded: _Embedded | None = None
        self._lock = threading.Lock()
        #: classify's answers by the text's digest (never the text): a chat asks about the
        #: same last message again when it retries, and each answer costs a few matrix products
        self._answers: OrderedDict[bytes, tuple[str | None, float]] = OrderedDict()
        self._answers_lock = threading.Lock()
        if warm:
            threading.Thread(target=self._warm, name="scope-warm-up", daemon=True).start()

    def _warm(self) -> None:
        try:
            self.prepare()
        except Exception:  # the first classify raises it again, where it is handled
            _log.exception("the semantic scope could not load its encoder")

    def prepare(self) -> None:
        """Load the encoder and embed the topics now (a server does it before it serves)."""
        self._vectors()

    def _vectors(self) -> _Embedded:
        embedded = self._embedded
        if embedded is not None:
            return embedded
        need_model()  # not embedded yet: never built on the event loop
        with self._lock:
            if self._embedded is None:
                self._embedded = self._build(self._encoder or shared_encoder())
            return self._embedded

    def _build(self, encoder: SentenceEncoder) -> _Embedded:
        topics = tuple(
            _Anchors(topic.name, tuple(texts), _embed(encoder, texts))
            for topic in self._topic_specs
            for texts in [anchor_texts(topic)]
        )
        counters = tuple(text for topic in self._topic_specs for text in topic.counter_examples)
        return _Embedded(
            encoder, topics, counters, _embed(encoder, counters), _embed(encoder, FOLLOW_UPS)
        )

    def read(self, text: str) -> Reading:
        """The full reading of a text; thread-safe (the anchors are read-only)."""
        embedded = self._vectors()
        vector = embedded.encoder.encode([bounded(text, READ_LIMIT)])[0]
        best: tuple[float, str, str] = (-2.0, "", "")
        for anchors in embedded.topics:
            near, index = _nearest(anchors.vectors @ vector)
            if near > best[0]:
                best = (near, anchors.topic, anchors.texts[index])
        near, topic, nearest = best
        counter: float | None = None
        nearest_counter: str | None = None
        if embedded.counter_texts:
            counter, index = _nearest(embedded.counters @ vector)
            nearest_counter = embedded.counter_texts[index]
        scored = score(near, counter, self._margin)
        follow_up = float((embedded.follow_ups @ vector).max())
        return Reading(topic, near, nearest, counter, nearest_counter, scored, follow_up)

    def classify(self, text: str) -> tuple[str | None, float]:
        if word_count(text) < self._min_words:
            return None, 1.0  # too short to judge: a greeting, "thanks", "yes please"
        key = digest(text)
        with self._answers_lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                return answer
        charge_scan(key, len(text))  # before the model: a long new text is read on a thread
        reading = self.read(text)
        if reading.follow_up >= max(FOLLOW_UP_SIMILARITY, reading.near):
            answer = (None, 1.0)
        else:
            answer = (reading.topic, reading.score)
        with self._answers_lock:
            self._answers[key] = answer
            if len(self._answers) > _ANSWERS:
                self._answers.popitem(last=False)
        return answer
