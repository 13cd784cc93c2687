"""A match longer than the stream's hold-back: what was sent cannot be taken back, the rest
of the match is never released, and the decision says that part of it got out."""

from __future__ import annotations

from pathlib import Path

from gateway.checks.registry import default_registry
from gateway.pipeline.output import OutputStage as OutputGuard
from gateway.policy.decision import Decision
from gateway.policy.loader import load_policy

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NUMBER = "+1 415 555 0123"


def _guard(tmp_path: Path, hold_back: int) -> tuple[OutputGuard, Decision]:
    text = (POLICIES / "test-context.yaml").read_text()
    path = tmp_path / "test-context.yaml"
    path.write_text(f"{text.rstrip()}\nstream:\n  hold_back: {hold_back}\n")
    (tmp_path / "guidelines").symlink_to(POLICIES / "guidelines")
    policy = load_policy(path, default_registry(), ["test-small", "test-large", "dead-model"])
    decision = Decision(policy.revision, policy.context)
    return OutputGuard(policy, decision, disclose=False), decision


def _stream(guard: OutputGuard, text: str, size: int) -> str:
    out = [guard.feed(0, text[i : i + size]) for i in range(0, len(text), size)]
    return "".join(out) + guard.finish(0)


def test_the_unsent_rest_of_a_long_match_is_redacted(tmp_path: Path) -> None:
    guard, decision = _guard(tmp_path, hold_back=4)
    sent = _stream(guard, f"call me on {NUMBER} today, thanks", size=3)
    guard.close(None)
    assert "0123" not in sent  # the tail of the number never goes out
    assert "[phone]" in sent
    assert sent.endswith(" today, thanks")
    (outcome,) = [o for o in decision.outcomes if o.rule == "phone-out"]
    assert outcome.enforced == "redact"
    assert outcome.note is not None and "already sent" in outcome.note
    assert "hold_back" in outcome.note


def test_a_hold_back_that_covers_the_match_redacts_it_whole(tmp_path: Path) -> None:
    guard, decision = _guard(tmp_path, hold_back=40)
    sent = _stream(guard, f"call me on {NUMBER} today, thanks", size=3)
    guard.close(None)
    assert sent == "call me on [phone] today, thanks"
    (outcome,) = [o for o in decision.outcomes if o.rule == "phone-out"]
    assert outcome.note is None
