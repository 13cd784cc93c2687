"""`gateway policy explain` says how the topic scope reads a text, in words."""

from __future__ import annotations

from pathlib import Path

from tests.servers import cli

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = {"GATEWAY_CONFIG": None, "GATEWAY_DATABASE_URL": None}


def explain(context: str, text: str, *more: str, cwd: Path = ROOT) -> str:
    result = cli(["policy", "explain", "--context", context, text, *more], DEFAULT, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_off_topic_text_says_it_is_out_of_scope() -> None:
    out = explain("bank-support", "what is the weather like in Paris tomorrow")
    assert "None" not in out
    assert "in scope from 0.30: out of scope (refuse)" in out
    assert "- scope.topic [topic_scope] → block" in out


def test_an_on_topic_text_names_its_nearest_topic_and_score() -> None:
    out = explain("bank-support", "my card was stolen yesterday, please block it")
    assert "scope: nearest topic 'cards' (score 0." in out
    assert "in scope from 0.30: in scope" in out
    assert "scope.topic" not in out


def test_a_short_text_is_not_judged() -> None:
    out = explain("bank-support", "thanks!")
    assert "scope: not judged" in out
    assert "fewer than 3 words" in out


def test_a_policy_without_topics_says_so(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "plain.yaml").write_text(
        "context: plain\npurpose: anything\nowner: ops@example.com\naudience: staff\n"
        "models: {allow: [demo-small]}\n"
    )
    out = explain("plain", "what is the weather like in Paris tomorrow", cwd=tmp_path)
    assert "scope: no topics are defined, so every subject is in scope" in out


def test_the_output_stage_has_no_scope_line() -> None:
    out = explain("bank-support", "what is the weather like in Paris", "--stage", "output")
    assert "scope:" not in out
