"""The output stage on its own, with real policies compiled from YAML and the real checks: a
whole answer and the same answer streamed in any pieces release the same text and leave the
same decision; redactions across piece boundaries, blocks as answers and as errors, n > 1,
shadow rules, a heavy rule's step scanning and the disclosure notice."""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from gateway.checks.base import Finding
from gateway.checks.registry import default_registry
from gateway.errors import PolicyUnavailable, PolicyViolation
from gateway.pipeline.output import Blocked, OutputStage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.loader import load_policy

NOTICE = "You are talking to a program."
HEAD = {
    "purpose": "The output stage under test.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small"]},
}
RULES: list[dict[str, Any]] = [
    {"id": "recipe", "stage": "output", "why": "t", "detect": {"keywords": ["secret recipe"]},
     "action": "block", "block_as": "answer", "message": "I cannot share that."},
    {"id": "codes", "stage": "output", "why": "t", "detect": {"keywords": ["launch codes"]},
     "action": "block"},
    {"id": "contact", "stage": "output", "why": "t", "detect": {"pii": ["phone", "email"]},
     "action": "redact"},
    {"id": "persona", "stage": "output", "why": "t", "detect": {"anthropomorphism": {}},
     "action": "flag"},
    {"id": "rival", "stage": "output", "why": "t", "detect": {"keywords": ["better than acme"]},
     "action": "warn"},
    {"id": "shadow-card", "stage": "output", "why": "t", "detect": {"pii": ["credit_card"]},
     "action": "redact", "mode": "shadow"},
]  # fmt: skip
PLAIN = [
    "Call me on +1 415 555 0123 or write to ana@example.org, thanks.",
    "I feel happy today! Our plan is better than Acme, and mail bo@example.com now.",
    "Card 4111 1111 1111 1111 is on file; phone +44 20 7946 0958 after six.",
    "Nothing to see here, just a plain answer about opening hours. " * 12,
]


class Stepping:
    """A heavy (model-like) check: the whole text is a finding when it holds ``phrase``."""

    name: ClassVar[str] = "stepping"
    heavy: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.phrase: str = params["phrase"]
        self.calls: list[int] = []

    @property
    def max_span(self) -> int:
        return 400

    def find(self, text: str) -> list[Finding]:
        self.calls.append(len(text))
        return [Finding(0, len(text), "hit", 0.9)] if self.phrase in text else []


def _policy(
    tmp_path: Path, rules: list[dict[str, Any]] = RULES, registered: Any = None, **more: Any
) -> CompiledPolicy:
    registry = default_registry()
    registry.register(Stepping.name, Stepping)
    if registered is not None:
        registry.register(registered.name, registered)
    path = tmp_path / "output.yaml"
    body = {"context": "output", **HEAD, "rules": rules, **more}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return load_policy(path, registry, ["test-small"])


def _answer(texts: list[str]) -> dict[str, Any]:
    choices = [
        {
            "index": i,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text},
            "logprobs": {"content": [{"token": text[:3], "logprob": -0.1}]},
        }
        for i, text in enumerate(texts)
    ]
    return {"choices": choices}


def _whole(policy: CompiledPolicy, texts: list[str], *, disclose: bool = False) -> Any:
    decision = Decision(policy.revision, policy.context)
    answer = _answer(texts)
    changed = OutputStage(policy, decision, disclose=disclose).answer(answer)
    contents = [c["message"]["content"] for c in answer["choices"]]
    return contents, answer, decision, changed


def _pieces(text: str, rng: random.Random) -> list[str]:
    pieces, at = [], 0
    while at < len(text):
        size = rng.choice((1, 2, 3, 5, 8, 13, 40))
        pieces.append(text[at : at + size])
        at += size
    return pieces


def _streamed(
    policy: CompiledPolicy, texts: list[str], rng: random.Random, *, disclose: bool = False
) -> tuple[list[str], Decision]:
    """Each choice streamed in random pieces, the choices interleaved, as stream.py does."""
    decision = Decision(policy.revision, policy.context)
    stage = OutputStage(policy, decision, disclose=disclose)
    queues = {i: _pieces(text, rng) for i, text in enumerate(texts)}
    out = {i: "" for i in queues}
    while queues:
        i = rng.choice(sorted(queues))
        try:
            out[i] += stage.feed(i, queues[i].pop(0))
            if not queues[i]:
                out[i] += stage.finish(i)
        except Blocked as blocked:
            refusal = stage.refuse(i, blocked.rule)
            if refusal is None:
                stage.close(blocked.rule)
                raise
            out[i] += refusal
            queues[i] = []
        if not queues[i]:
            del queues[i]
    stage.close(None)
    return [out[i] for i in sorted(out)], decision


def _recorded(decision: Decision) -> list[tuple[Any, ...]]:
    return [
        (o.rule, o.enforced, o.note, sorted((e.message, e.start, e.end) for e in o.evidence))
        for o in decision.outcomes
    ]


def test_a_stream_in_any_pieces_releases_what_the_whole_answer_does(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    rng = random.Random(11)
    for texts in [[t] for t in PLAIN] + [PLAIN[:3]]:
        contents, _, whole, _ = _whole(policy, texts)
        for _ in range(25):
            sent, streamed = _streamed(policy, texts, rng)
            assert sent == contents
            assert _recorded(streamed) == _recorded(whole)
            assert set(streamed.timings) == set(whole.timings)


def test_a_redaction_across_piece_boundaries(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    text = "reach me at +1 415 555 0123 today"
    for size in range(1, 8):
        decision = Decision(policy.revision, policy.context)
        stage = OutputStage(policy, decision, disclose=False)
        sent = [stage.feed(0, text[i : i + size]) for i in range(0, len(text), size)]
        assert not any("0123" in piece or "555" in piece for piece in sent)
        assert "".join(sent) + stage.finish(0) == "reach me at [phone] today"
        stage.close(None)
        (outcome,) = decision.outcomes
        assert (outcome.rule, outcome.enforced, len(outcome.evidence)) == ("contact", "redact", 1)


def test_a_block_as_answer_refuses_that_choice_only(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    texts = ["here is the secret recipe: flour", "call +1 415 555 0123", "plain"]
    contents, answer, whole, changed = _whole(policy, texts)
    assert changed and contents == ["I cannot share that.", "call [phone]", "plain"]
    first, second, third = answer["choices"]
    assert first["finish_reason"] == "content_filter" and first["message"]["refusal"]
    assert first["logprobs"] is None and second["logprobs"] is None
    assert third["logprobs"] is not None
    assert {o.rule: o.enforced for o in whole.outcomes} == {"recipe": "block", "contact": "redact"}
    sent, streamed = _streamed(policy, texts, random.Random(3))
    assert sent[0].endswith("I cannot share that.") and "recipe" not in sent[0]
    assert sent[1:] == contents[1:]
    enforced = {o.rule: o.enforced for o in streamed.outcomes}
    assert enforced == {"recipe": "block", "contact": "redact"}


def test_a_block_as_error_fails_the_whole_answer_and_moots_redactions(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    texts = ["call +1 415 555 0123", "the launch codes are 0000"]
    decision = Decision(policy.revision, policy.context)
    answer = _answer(texts)
    with pytest.raises(PolicyViolation) as raised:
        OutputStage(policy, decision, disclose=True).answer(answer)
    assert raised.value.rule == "codes"
    assert answer == _answer(texts)  # nothing was changed in place
    enforced = {o.rule: o.enforced for o in decision.outcomes}
    assert enforced == {"codes": "block", "contact": "none"}
    with pytest.raises(Blocked):
        _streamed(policy, texts, random.Random(5))


def test_shadow_rules_hold_nothing_back(tmp_path: Path) -> None:
    shadow = [{**rule, "mode": "shadow"} for rule in RULES if rule["action"] in ("block", "redact")]
    policy = _policy(tmp_path, shadow)
    assert policy.hold_back == 0
    decision = Decision(policy.revision, policy.context)
    stage = OutputStage(policy, decision, disclose=False)
    text = "the secret recipe is at +1 415 555 0123"
    words = re.findall(r"\S+\s*", text)
    assert [stage.feed(0, word) for word in words] == words
    assert stage.finish(0) == ""
    stage.close(None)
    assert {o.rule: o.enforced for o in decision.outcomes} == {
        "recipe": "shadow",
        "contact": "shadow",
    }


@pytest.mark.parametrize(
    ("text", "step"),
    [("x" * 3010, 200), ("A sentence that ends here. " * 111, 100)],
    ids=["no-sentences", "sentences"],
)
def test_a_heavy_rule_scans_per_step(tmp_path: Path, text: str, step: int) -> None:
    rules = [{"id": "model", "stage": "output", "why": "t", "action": "block",
              "detect": {"stepping": {"phrase": "zebra"}}}]  # fmt: skip
    policy = _policy(tmp_path, rules)
    check = policy.rules[0].check
    assert isinstance(check, Stepping)
    decision = Decision(policy.revision, policy.context)
    stage = OutputStage(policy, decision, disclose=False)
    released, scanned = "", 0
    for i in range(0, len(text), 4):
        due = stage.models_due(0, text[i : i + 4], final=False)
        calls = len(check.calls)
        released += stage.feed(0, text[i : i + 4])
        assert due == (len(check.calls) > calls)  # a model reads where, and only where, due
        scanned = i + 4 if due else scanned
        assert len(released) <= scanned  # nothing the model has not read goes out
    assert stage.models_due(0, "", final=True)
    assert released + stage.finish(0) == text
    assert len(check.calls) <= len(text) // step + 1  # per step, not per piece (750 pieces)
    assert max(check.calls) <= 400 + 200  # its window and one step
    stage.close(None)
    assert decision.outcomes == []


def test_the_notice_goes_before_the_first_text_and_the_refusal(tmp_path: Path) -> None:
    policy = _policy(tmp_path, disclosure={"notice": f"  {NOTICE}  "})
    texts = ["hello there", "the secret recipe"]
    contents, _, decision, changed = _whole(policy, texts, disclose=True)
    assert changed and decision.disclosure
    assert contents == [f"{NOTICE}\n\nhello there", f"{NOTICE}\n\nI cannot share that."]
    sent, _ = _streamed(policy, ["hello there"], random.Random(1), disclose=True)
    assert sent == contents[:1]
    stage = OutputStage(policy, Decision(policy.revision, policy.context), disclose=True)
    assert stage.refuse(0, policy.rules[0]) == f"{NOTICE}\n\nI cannot share that."
    untouched = _answer(["hello there"])
    stage = OutputStage(policy, Decision("r", "c"), disclose=False)
    assert not stage.answer(copy.deepcopy(untouched))


class Failing:
    """A light check that always fails: the rule's ``on_error`` decides."""

    name: ClassVar[str] = "failing"

    def __init__(self, params: Any) -> None:
        pass

    @property
    def max_span(self) -> int:
        return 10

    def find(self, text: str) -> list[Finding]:
        raise RuntimeError("the check broke")


def test_a_check_that_fails_closed_fails_the_answer_and_says_so(tmp_path: Path) -> None:
    failing = {"id": "broken", "stage": "output", "why": "t", "detect": {"failing": {}},
               "action": "flag"}  # fmt: skip
    rules = [RULES[2], failing]
    policy = _policy(tmp_path, rules, registered=Failing)
    decision = Decision(policy.revision, policy.context)
    with pytest.raises(PolicyUnavailable) as raised:
        OutputStage(policy, decision, disclose=False).answer(_answer(["call +1 415 555 0123"]))
    assert raised.value.extra_headers == {"retry-after": "1"}
    outcomes = {o.rule: (o.enforced, o.error) for o in decision.outcomes}
    assert outcomes == {
        "contact": ("none", None),  # found, but nothing was enforced: the answer failed
        "broken": ("fail_closed", "RuntimeError: the check broke"),
    }
    assert set(decision.timings) == {"output:contact", "output:broken"}
    stage = OutputStage(policy, Decision("r", "c"), disclose=False)
    assert stage.feed(0, "hello") == ""  # held back; the flag reads it later
    with pytest.raises(PolicyUnavailable) as raised:
        stage.finish(0)
    assert "rule 'broken'" in raised.value.message


def test_a_stream_cut_short_is_read_to_its_end_for_the_record(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    decision = Decision(policy.revision, policy.context)
    stage = OutputStage(policy, decision, disclose=False)
    stage.feed(0, "All good. ")
    stage.feed(0, "I feel so happy to help you")  # a flag reads 1000 characters at a time
    stage.close(None)  # the client went away: no finish
    (outcome,) = decision.outcomes
    assert (outcome.rule, outcome.enforced, len(outcome.evidence)) == ("persona", "flag", 1)


def test_text_goes_out_a_quantum_behind_the_hold_back(tmp_path: Path) -> None:
    policy = _policy(tmp_path)
    hold = policy.hold_back
    stage = OutputStage(policy, Decision(policy.revision, policy.context), disclose=False)
    text = PLAIN[3] * 4
    size = released = 0
    releases = []
    for piece in re.findall(r"\S+\s*", text):
        size += len(piece)
        out = stage.feed(0, piece)
        released += len(out)
        releases.append(len(out))
        assert size - hold - hold // 4 - len(piece) <= released <= max(0, size - hold)
    assert released + len(stage.finish(0)) == len(text)
    assert max(releases) <= hold // 4 + 20  # steps of about a quantum, not the whole text
