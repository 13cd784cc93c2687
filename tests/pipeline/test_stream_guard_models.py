"""Learned output rules on a stream, through the ``openai`` SDK against a running gateway in front
of a scripted upstream: a flag classifier judges the answer as a whole (not the newest piece), a
model is scored once per step of text rather than once per chunk, a whole-answer finding is one
piece of evidence however often it was scanned, a blocking model still lets nothing it blocks
out, and a shadow rule holds nothing back. The guard itself, fed in 4-character pieces, counts
the scores of a heavy rule."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import openai
import pytest
import yaml

from gateway.checks.base import Finding
from gateway.checks.registry import default_registry
from gateway.detectors.model import ModelInfo
from gateway.pipeline.output import Blocked
from gateway.pipeline.output import OutputStage as OutputGuard
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.loader import load_policy
from tests.conftest import HERE, gateway_config
from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    scripted_upstream,
    serving_gateway,
)

ROOT = HERE.parent
SCORE_LOG_ENV = "SITUATE_TEST_SCORE_LOG"
_WRITING = threading.Lock()


class PhraseModel:
    """Probability 0.9 when its phrase occurs, 0.1 otherwise; each text it scores is one line
    (its name, the text's length) in the file ``SITUATE_TEST_SCORE_LOG`` names, so a test can
    count the scores one streamed answer cost in the gateway's own process."""

    def __init__(self, name: str, label: str, phrase: str) -> None:
        self.info = ModelInfo(name, "ph-1", (label,), {label: 0.5})
        self._phrase = phrase

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        log = os.environ.get(SCORE_LOG_ENV)
        if log:
            with _WRITING, open(log, "a", encoding="utf-8") as out:
                out.writelines(f"{self.info.name}\t{len(t)}\n" for t in texts)
        label = self.info.labels[0]
        return [{label: 0.9 if self._phrase in t.lower() else 0.1} for t in texts]


#: the operator's models the policies below name as
#: ``tests.pipeline.test_stream_guard_models:<name>``
memories = PhraseModel("memories", "human_likeness", "my childhood")
codes = PhraseModel("codes", "secret", "launch code")
held = PhraseModel("held", "secret", "launch code")
shadows = PhraseModel("shadows", "secret", "launch code")


def _prose(count: int, special: dict[int, str]) -> str:
    """``count`` plain sentences of about 70 characters, sentence ``i`` as ``special[i]``."""
    plain = "Sentence {i:02d} talks about the weather and about nothing else at all."
    return " ".join(special.get(i, plain.format(i=i)) for i in range(count))


LONG_FLAG = _prose(15, {1: "When I think about my childhood, I remember the long summers."})
LONG_BLOCK = _prose(15, {10: "And now, here it is: the launch code is 0000 for everyone."})
SCRIPT = {
    "rules": [
        {"contains": "SHORT-FLAG", "reply": "I remember my childhood by the sea"},
        {"contains": "LONG-FLAG", "reply": LONG_FLAG},
        {"contains": "LONG-BLOCK", "reply": LONG_BLOCK},
        {"contains": "LONG-PLAIN", "reply": _prose(15, {})},
        {"contains": "SHORT-CODE", "reply": "Sure: the launch code is 0000"},
        # [DONE] with no finish chunk (llama-cpp-python's way to cut a stream short)
        {"contains": "CUT-CODE", "reply": "the launch code is 0000", "fault": {"done_after": 3}},
    ]
}
MODELS = "tests.pipeline.test_stream_guard_models"
HEAD = {
    "purpose": "Learned output rules on streams.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small"]},
}


def _classifier(rule_id: str, model: str, action: str, **more: Any) -> dict[str, Any]:
    window = more.pop("window", 400)
    return {
        "id": rule_id,
        "stage": "output",
        "why": f"{rule_id} under test",
        "detect": {"classifier": {"model": f"{MODELS}:{model}", "window": window}},
        "action": action,
        **more,
    }


POLICIES: dict[str, dict[str, Any]] = {
    # a flag classifier alone: nothing holds text back, so the scan must reach back itself
    "flag-only": {"rules": [_classifier("persona", "memories", "flag", window=2000)]},
    "block-model": {"rules": [_classifier("codes-out", "codes", "block")]},
    # a hold-back shorter than the model's step: the release waits for the model's scan
    "block-short-hold": {
        "rules": [_classifier("codes-out", "held", "block")],
        "stream": {"hold_back": 20},
    },
    "answer-model": {
        "rules": [
            _classifier(
                "codes-out", "codes", "block", block_as="answer", message="I cannot share that."
            )
        ]
    },
    "shadow-model": {
        "rules": [_classifier("codes-shadow", "shadows", "block", window=2000, mode="shadow")]
    },
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    folder = tmp_path_factory.mktemp("stream-models")
    policies = folder / "policies"
    policies.mkdir()
    for context, body in POLICIES.items():
        text = yaml.safe_dump({"context": context, **HEAD, **body}, sort_keys=False)
        (policies / f"{context}.yaml").write_text(text)
    log = folder / "scores.log"
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'stream.db'}",
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONPATH": str(ROOT),  # the operator's models: this module's
        SCORE_LOG_ENV: str(log),
    }
    with scripted_upstream(folder, SCRIPT) as upstream:
        config = gateway_config(upstream, folder, policies)
        with serving_gateway(config, env, list(POLICIES), cwd=ROOT) as (url, keys):
            yield Gateway(url, keys["flag-only"], env, config, "sqlite", keys, policies), log


def _stream(gateway: Gateway, context: str, text: str) -> tuple[list[str], str]:
    """The streamed answer's content pieces, as the SDK gave them, and the exchange id."""
    sdk = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys[context], max_retries=0)
    with (
        sdk,
        sdk.chat.completions.with_streaming_response.create(
            model="test-small", messages=[{"role": "user", "content": text}], stream=True
        ) as response,
    ):
        pieces = [c.delta.content for chunk in response.parse() for c in chunk.choices]
        return [p for p in pieces if p], response.headers["x-request-id"]


def _scored(log: Path, model: str) -> list[int]:
    """The length of each text ``model`` scored, in order."""
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [int(length) for name, length in (line.split("\t") for line in lines) if name == model]


def _scores(log: Path, model: str) -> int:
    return len(_scored(log, model))


def _outcome(record: dict[str, Any], rule: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in record["decision"]["outcomes"] if o["rule"] == rule)
    return found


def test_a_flag_classifier_judges_the_streamed_answer_as_a_whole(
    served: tuple[Gateway, Path],
) -> None:
    gateway, _ = served
    pieces, request_id = _stream(gateway, "flag-only", "SHORT-FLAG")
    assert "".join(pieces) == "I remember my childhood by the sea"
    assert len(pieces) > 1  # a flag holds nothing back: the words arrive as they come
    record = gateway.record(request_id)
    outcome = _outcome(record, "persona")
    assert outcome["enforced"] == "flag"
    (evidence,) = outcome["evidence"]  # "my" and " childhood" came in two chunks
    assert (evidence["start"], evidence["end"]) == (0, len("I remember my childhood by the sea"))
    assert evidence["source"] == "memories@ph-1"


def test_a_long_answer_is_scored_per_step_with_one_piece_of_evidence(
    served: tuple[Gateway, Path],
) -> None:
    gateway, log = served
    before = _scores(log, "memories")
    pieces, request_id = _stream(gateway, "flag-only", "LONG-FLAG")
    scores = _scores(log, "memories") - before
    assert "".join(pieces) == LONG_FLAG
    chunks = len(LONG_FLAG.split())  # the mock streams a word per chunk
    print(f"\n{len(LONG_FLAG)} characters in {chunks} chunks: {scores} scores")
    assert 1 <= scores <= len(LONG_FLAG) // 100 + 1  # per step of text, not per chunk
    outcome = _outcome(gateway.record(request_id), "persona")
    (evidence,) = outcome["evidence"]  # every scan after the phrase found it again
    assert evidence["score"] == pytest.approx(0.9)


@pytest.mark.parametrize("context", ["block-model", "block-short-hold"])
def test_a_blocking_model_scanned_per_step_lets_nothing_it_blocks_out(
    served: tuple[Gateway, Path], context: str
) -> None:
    gateway, log = served
    model = "codes" if context == "block-model" else "held"
    before = _scores(log, model)
    pieces, request_id = _stream(gateway, context, "LONG-BLOCK")
    scores = _scores(log, model) - before
    sent = "".join(pieces)
    print(f"\n{context}: {scores} scores, {len(sent)} characters released before the block")
    assert "launch" not in sent and "0000" not in sent
    assert sent and LONG_BLOCK.startswith(sent)  # the text before it did go out
    assert 1 <= scores <= len(LONG_BLOCK) // 100 + 1
    record = gateway.record(request_id)
    assert record["status"] == "blocked"
    outcome = _outcome(record, "codes-out")
    assert outcome["enforced"] == "block" and len(outcome["evidence"]) == 1


def test_a_plain_answer_past_a_blocking_model_is_scored_a_window_at_a_time(
    served: tuple[Gateway, Path],
) -> None:
    gateway, log = served
    before = _scores(log, "codes")
    pieces, request_id = _stream(gateway, "block-model", "LONG-PLAIN")
    lengths = _scored(log, "codes")[before:]
    assert "".join(pieces) == _prose(15, {})
    assert gateway.record(request_id)["status"] == "ok"
    assert lengths and max(lengths) <= 400 + 200 + 20  # its window and one step, no more


def test_a_model_that_blocks_at_the_end_answers_with_its_refusal(
    served: tuple[Gateway, Path],
) -> None:
    gateway, _ = served
    sdk = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["answer-model"], max_retries=0)
    with (
        sdk,
        sdk.chat.completions.with_streaming_response.create(
            model="test-small", messages=[{"role": "user", "content": "SHORT-CODE"}], stream=True
        ) as response,
    ):
        chunks = [c for chunk in response.parse() for c in chunk.choices]
        request_id = response.headers["x-request-id"]
    assert "".join(c.delta.content or "" for c in chunks) == "I cannot share that."
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["content_filter"]
    record = gateway.record(request_id)
    assert record["status"] == "blocked"
    assert _outcome(record, "codes-out")["enforced"] == "block"


def test_a_model_that_blocks_a_stream_cut_short_ends_it_cleanly(
    served: tuple[Gateway, Path],
) -> None:
    gateway, _ = served
    pieces, request_id = _stream(gateway, "block-model", "CUT-CODE")
    assert "launch" not in "".join(pieces)
    record = gateway.record(request_id)
    assert record["status"] == "blocked"
    assert _outcome(record, "codes-out")["enforced"] == "block"


def test_a_shadow_model_holds_nothing_back_and_is_recorded(served: tuple[Gateway, Path]) -> None:
    gateway, _ = served
    pieces, request_id = _stream(gateway, "shadow-model", "LONG-BLOCK")
    assert "".join(pieces) == LONG_BLOCK  # a shadow block blocks nothing
    assert len(pieces) > 10  # and holds nothing back: the words arrive as they come
    record = gateway.record(request_id)
    assert record["status"] == "ok"
    outcome = _outcome(record, "codes-shadow")
    assert outcome["mode"] == "shadow" and outcome["enforced"] == "shadow"
    assert len(outcome["evidence"]) == 1


# The guard on its own, fed as a backend would stream, with a heavy check that counts its work.


class CountingCheck:
    """A heavy (model-like) check: the whole text is a finding when it holds ``phrase``."""

    name: ClassVar[str] = "counting"
    heavy: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.phrase: str = params["phrase"]
        self.window: int = params.get("window", 2000)
        self.calls = 0

    @property
    def max_span(self) -> int:
        return self.window

    def find(self, text: str) -> list[Finding]:
        self.calls += 1
        return [Finding(0, len(text), "hit", 0.9)] if self.phrase in text else []


def _policy(tmp_path: Path, rules: list[dict[str, Any]], **more: Any) -> CompiledPolicy:
    registry = default_registry()
    registry.register(CountingCheck.name, CountingCheck)
    path = tmp_path / "counting.yaml"
    body = {"context": "counting", **HEAD, "rules": rules, **more}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return load_policy(path, registry, ["test-small"])


def _rule(rule_id: str, phrase: str, action: str, **more: Any) -> dict[str, Any]:
    detect = {"counting": {"phrase": phrase, "window": more.pop("window", 2000)}}
    return {
        "id": rule_id,
        "stage": "output",
        "why": "t",
        "detect": detect,
        "action": action,
        **more,
    }


def _feed(guard: OutputGuard, text: str, size: int = 4) -> str:
    out = [guard.feed(0, text[i : i + size]) for i in range(0, len(text), size)]
    return "".join(out) + guard.finish(0)


def _calls(policy: CompiledPolicy, rule_id: str) -> int:
    check = next(r.check for r in policy.rules if r.id == rule_id)
    assert isinstance(check, CountingCheck)
    return check.calls


def test_a_heavy_rule_is_scanned_per_step_not_per_piece(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, [_rule("heavy-flag", "zebra", "flag"), _rule("heavy-block", "lion", "block")]
    )
    decision = Decision(policy.revision, policy.context)
    guard = OutputGuard(policy, decision, disclose=False)
    answer = ("a zebra " + "x" * 992)[:1000]
    assert _feed(guard, answer) == answer
    guard.close(None)
    flagged = _calls(policy, "heavy-flag")
    print(f"\n1,000 characters in 4-character pieces: {flagged} scans per heavy rule")
    assert flagged == _calls(policy, "heavy-block") <= 1000 // 200 + 1  # was 250
    (outcome,) = [o for o in decision.outcomes if o.rule == "heavy-flag"]
    assert len(outcome.evidence) == 1 and outcome.enforced == "flag"


def test_a_heavy_block_at_the_end_is_found_before_the_rest_is_released(tmp_path: Path) -> None:
    policy = _policy(tmp_path, [_rule("heavy-block", "lion", "block")], stream={"hold_back": 10})
    decision = Decision(policy.revision, policy.context)
    guard = OutputGuard(policy, decision, disclose=False)
    answer = "x" * 250 + " a lion"
    sent = "".join(guard.feed(0, answer[i : i + 4]) for i in range(0, len(answer), 4))
    assert "lion" not in sent and len(sent) <= 200  # released only up to its last scan
    with pytest.raises(Blocked):
        guard.finish(0)


def test_shadow_rules_hold_nothing_back_but_are_scanned(tmp_path: Path) -> None:
    shadow = _rule("shadow-block", "lion", "block", mode="shadow")
    keywords = {
        "id": "shadow-words",
        "stage": "output",
        "why": "t",
        "detect": {"keywords": ["a lion"]},
        "action": "redact",
        "mode": "shadow",
    }
    policy = _policy(tmp_path, [shadow, keywords])
    assert (policy.hold_back, policy.longest_match) == (0, 0)
    decision = Decision(policy.revision, policy.context)
    guard = OutputGuard(policy, decision, disclose=False)
    assert guard.feed(0, "here is a lion") == "here is a lion"
    assert guard.finish(0) == ""
    guard.close(None)
    fired = {o.rule: (len(o.evidence), o.enforced) for o in decision.outcomes}
    assert fired == {"shadow-block": (1, "shadow"), "shadow-words": (1, "shadow")}
