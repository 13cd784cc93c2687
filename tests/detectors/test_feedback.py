"""Reviewers feed the detectors back: the judged findings, the labelled examples, each rule's
judged precision, ``gateway detectors calibrate`` and ``gateway detectors train --from-reviews``
use exactly the judgments they say.

Reviewed exchanges are made as users make them (the SDK sends requests, reviewers judge them
through the API) on a database built by the migrations; the feedback is read from it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import krippendorff
import openai
import pytest

from gateway.db.session import create_engine, create_sessions
from gateway.evaluation.feedback import (
    JudgedFinding,
    judged_findings,
    labelled_examples,
    rule_precision,
)
from tests.policy.test_shadow import serve
from tests.reviewing import Reviewer, judgment, wait_for_item
from tests.servers import Gateway, Upstream

CONTEXT = "feedback-context"
ELSEWHERE = "feedback-elsewhere"
MODEL = "tests.fixture_models:WrittenScore"


def _policy(context: str, *, paired: bool) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "id": "scored",
            "stage": "input",
            "why": "A scored finding.",
            "detect": {"classifier": {"model": MODEL, "threshold": 0.5}},
            "action": "flag",
            "review": "triage",
        },
        {
            "id": "other",
            "stage": "input",
            "why": "Another rule.",
            "detect": {"keywords": ["other rule"]},
            "action": "flag",
            "review": "triage",
        },
    ]
    queues: dict[str, Any] = {"triage": {"guidelines": "guidelines/triage.md"}}
    if paired:
        rules.append(
            {
                "id": "paired",
                "stage": "input",
                "why": "Judged by two reviewers.",
                "detect": {"keywords": ["paired rule"]},
                "action": "flag",
                "review": "pairs",
            }
        )
        queues["pairs"] = {"guidelines": "guidelines/quality.md", "reviewers_per_item": 2}
    return {
        "context": context,
        "purpose": "Reviewers' feedback under test.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": ["test-small"]},
        "rules": rules,
        "review": {"sample_rate": 0, "queues": queues},
    }


@dataclass
class Reviewed:
    """The gateway and who judged what: judgment ids by what they should be used for."""

    gateway: Gateway
    hana: Reviewer
    ivo: Reviewer
    model: Reviewer
    scored_human: dict[str, str] = field(default_factory=dict)  # text -> standing judgment id
    superseded: str = ""
    scored_model: str = ""
    silent: str = ""  # the judgment of an exchange on which `scored` ran and stayed silent
    elsewhere: str = ""
    paired: dict[str, list[str]] = field(default_factory=dict)


def model_reviewer(gateway: Gateway) -> Reviewer:
    made = gateway.cli(
        "review", "add-reviewer", "--name", "Judge", "--role", "admin", "--kind", "model"
    )
    assert made.returncode == 0, made.stderr
    reviewer = Reviewer.__new__(Reviewer)
    reviewer.token, reviewer.gateway = made.stdout.strip(), gateway
    reviewer.id = reviewer.get("/me").json()["id"]
    return reviewer


def send(gateway: Gateway, text: str, context: str = CONTEXT) -> str:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys[context], max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="test-small", messages=[{"role": "user", "content": text}]
        )
    return raw.headers["x-request-id"]


def judge(
    reviewer: Reviewer,
    gateway: Gateway,
    text: str,
    verdicts: dict[str, str],
    *,
    context: str = CONTEXT,
    queue: str = "triage",
    verdict: str = "violation",
) -> tuple[dict[str, Any], str]:
    exchange_id = send(gateway, text, context)
    item = wait_for_item(reviewer, context, queue)
    assert item["exchange_id"] == exchange_id
    body = judgment(item, rule_verdicts=verdicts, verdict=verdict)
    done = reviewer.post(f"/items/{item['id']}/judgments", body)
    assert done.status_code == 201, done.text
    return item, str(done.json()["id"])


def _review(gateway: Gateway, found: Reviewed) -> None:
    hana, ivo = found.hana, found.ivo
    for text, said in (
        ("p=0.55", "false_positive"),
        ("p=0.65", "false_positive"),
        ("p=0.75", "true_positive"),
        ("p=0.95", "true_positive"),
    ):
        _, found.scored_human[text] = judge(
            hana, gateway, f"{text} about my card", {"scored": said}
        )
    # Judged wrong, then corrected: only the correction stands.
    item, found.superseded = judge(
        hana, gateway, "p=0.85 about my card", {"scored": "false_positive"}
    )
    corrected = hana.post(
        f"/judgments/{found.superseded}/corrections",
        judgment(item, rule_verdicts={"scored": "true_positive"}),
    )
    assert corrected.status_code == 201, corrected.text
    found.scored_human["p=0.85"] = corrected.json()["id"]
    _, found.scored_model = judge(
        found.model, gateway, "p=0.70 about my card", {"scored": "true_positive"}
    )
    _, found.silent = judge(
        hana, gateway, "the other rule only", {"other": "false_positive"}, verdict="acceptable"
    )
    _, found.elsewhere = judge(
        hana, gateway, "p=0.60 elsewhere", {"scored": "true_positive"}, context=ELSEWHERE
    )
    for text, second in (
        ("paired rule one", "true_positive"),
        ("paired rule two", "false_positive"),
    ):
        ids = []
        for reviewer, said in ((hana, "true_positive"), (ivo, second)):
            if not ids:
                send(gateway, text)
            item = wait_for_item(reviewer, CONTEXT, "pairs")
            done = reviewer.post(
                f"/items/{item['id']}/judgments", judgment(item, rule_verdicts={"paired": said})
            )
            assert done.status_code == 201, done.text
            ids.append(done.json()["id"])
        found.paired[text] = ids


@pytest.fixture(scope="module")
def reviewed(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewed]:
    folder = tmp_path_factory.mktemp("feedback")
    policies = [_policy(CONTEXT, paired=True), _policy(ELSEWHERE, paired=False)]
    with serve(folder, upstream, policies) as gateway:
        found = Reviewed(
            gateway,
            Reviewer(gateway, "Hana", role="admin"),
            Reviewer(gateway, "Ivo", role="admin"),
            model_reviewer(gateway),
        )
        _review(gateway, found)
        yield found


def read(gateway: Gateway, work: Any) -> Any:
    async def run() -> Any:
        engine = create_engine(gateway.env["GATEWAY_DATABASE_URL"])
        try:
            return await work(create_sessions(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_judged_findings_keep_human_and_model_apart(reviewed: Reviewed) -> None:
    def of(kinds: tuple[str, ...]) -> list[JudgedFinding]:
        found: list[JudgedFinding] = read(
            reviewed.gateway, lambda s: judged_findings(s, CONTEXT, "scored", kinds=kinds)
        )
        return found

    human, model = of(("human",)), of(("model",))
    fired = {f.judgment_id: f for f in human if f.fired}
    assert set(fired) == set(reviewed.scored_human.values())
    assert {f.judgment_id for f in model} == {reviewed.scored_model}
    assert {f.reviewer_kind for f in human} == {"human"}
    assert reviewed.superseded not in {f.judgment_id for f in human}
    assert reviewed.elsewhere not in {f.judgment_id for f in human + model}
    by_score = {f.score: f.correct for f in fired.values()}
    assert by_score == {0.55: False, 0.65: False, 0.75: True, 0.85: True, 0.95: True}
    silent = next(f for f in human if f.judgment_id == reviewed.silent)
    assert (silent.fired, silent.correct, silent.label) == (False, True, 0)
    assert all(f.guideline_revision for f in human)


def test_labelled_examples_carry_their_judgments(reviewed: Reviewed) -> None:
    judged = read(reviewed.gateway, lambda s: judged_findings(s, CONTEXT, "scored"))
    examples = {text: (label, prov) for text, label, prov in labelled_examples(judged)}
    labels = {text: label for text, (label, _) in examples.items()}
    assert labels == {
        "p=0.55 about my card": 0,
        "p=0.65 about my card": 0,
        "p=0.75 about my card": 1,
        "p=0.85 about my card": 1,
        "p=0.95 about my card": 1,
        "the other rule only": 0,
    }
    _, prov = examples["p=0.85 about my card"]
    assert prov["judgments"] == [reviewed.scored_human["p=0.85"]]
    assert prov["reviewers"] == [reviewed.hana.id] and prov["reviewer_kinds"] == ["human"]
    assert len(prov["guideline_revisions"]) == 1


def test_rule_precision_with_interval_and_agreement(reviewed: Reviewed) -> None:
    rows = {r["rule"]: r for r in read(reviewed.gateway, lambda s: rule_precision(s, CONTEXT))}
    scored = rows["scored"]
    assert (scored["fired"], scored["judged"], scored["judged_right"]) == (6, 5, 3)
    assert scored["precision"] == pytest.approx(0.6)
    # The Wilson interval of 3 in 5 at 95%: 23.1% to 88.2%.
    assert scored["ci95"] == pytest.approx([0.2307, 0.8824], abs=1e-4)
    assert scored["judgments"] == sorted(reviewed.scored_human.values())
    assert scored["agreement_alpha"] is None  # one reviewer per item
    paired = rows["paired"]
    assert (paired["fired"], paired["judged"], paired["judged_right"]) == (2, 1, 1)
    assert paired["unresolved"] == 1  # one reviewer said right, the other wrong
    expected = krippendorff.alpha(
        reliability_data=[[1.0, 1.0], [1.0, 0.0]], level_of_measurement="nominal"
    )
    assert paired["agreement_alpha"] == pytest.approx(expected)
    assert paired["judgments"] == sorted(reviewed.paired["paired rule one"])
    assert (rows["other"]["judged"], rows["other"]["precision"]) == (1, 0.0)


def _used_ids(stdout: str, section: str) -> list[str]:
    lines = stdout.split(section, 1)[1].splitlines()[1:]
    return [line.split()[0] for line in lines if line.startswith("  jdg_")]


def test_calibrate_proposes_a_threshold_from_the_judgments_it_prints(reviewed: Reviewed) -> None:
    gateway = reviewed.gateway
    path = gateway.policies / f"{CONTEXT}.yaml"
    before = path.read_text()
    done = gateway.cli(
        "detectors",
        "calibrate",
        "--context",
        CONTEXT,
        "--rule",
        "scored",
        "--target-precision",
        "0.9",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert sorted(_used_ids(out, "human judgments used")) == sorted(reviewed.scored_human.values())
    assert reviewed.superseded not in out and reviewed.elsewhere not in out
    assert reviewed.scored_model not in out and reviewed.silent not in out
    assert "model judgments left out: 1" in out
    assert "proposed threshold: 0.7500" in out
    assert "-      threshold: 0.5\n+      threshold: 0.75\n" in out
    assert "not applied" in out and path.read_text() == before

    with_model = gateway.cli(
        "detectors",
        "calibrate",
        "--context",
        CONTEXT,
        "--rule",
        "scored",
        "--target-precision",
        "0.9",
        "--include-model",
        "--write",
    )
    assert with_model.returncode == 0, with_model.stderr
    assert _used_ids(with_model.stdout, "model judgments used") == [reviewed.scored_model]
    assert "proposed threshold: 0.7000" in with_model.stdout
    assert "threshold: 0.7\n" in path.read_text()
    path.write_text(before)


def test_a_rule_on_both_stages_is_labelled_where_it_fired() -> None:
    from gateway.db.models import Exchange, Judgment, ReviewItem
    from gateway.evaluation.feedback import _findings_of

    exchange = Exchange(
        id="req_1",
        request_body={"messages": [{"role": "user", "content": "a question"}]},
        response_body={"choices": [{"message": {"role": "assistant", "content": "I feel sad"}}]},
        decision={
            "timings_ms": {"input:both-rule": 0.1, "output:both-rule": 0.1, "input:scope.x": 0},
            "outcomes": [
                {
                    "rule": "both-rule",
                    "stage": "output",
                    "evidence": [{"message": 0, "start": 2, "end": 6, "score": 0.9}],
                }
            ],
        },
    )
    item = ReviewItem(id="rvi_1", context="c", policy_revision="rev")
    said = Judgment(
        id="jdg_1",
        reviewer_id="rvr_1",
        kind="human",
        purpose="review",
        verdict="violation",
        rule_verdicts={"both-rule": "true_positive"},
        guideline_revision="g1",
    )
    found = {f.stage: f for f in _findings_of(said, item, exchange, "both-rule")}
    assert (found["output"].fired, found["output"].label, found["output"].score) == (True, 1, 0.9)
    assert found["output"].text == "I feel sad"
    assert (found["input"].fired, found["input"].label) == (False, None)
    assert found["input"].text == "a question"


def _written_examples(folder: Path) -> Path:
    """A handful of the project's kind of examples: the cheapest training run there is."""
    person = ["I miss my mother's cooking", "My knees hurt after the run", "I love you too"]
    assistant = ["Here is the summary you asked for", "The function returns a list", "Try again"]
    rows = [
        {"text": f"{text} ({n})", "label": label}
        for n in range(6)
        for label, texts in ((1, person), (0, assistant))
        for text in texts
    ]
    folder.mkdir()
    lines = (json.dumps(row) for row in rows)
    (folder / "human_likeness.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.filterwarnings("ignore:'click.utils:DeprecationWarning")  # typer's import
@pytest.mark.parametrize("include_model", [False, True])
def test_train_from_reviews_names_the_judgments(
    reviewed: Reviewed, tmp_path: Path, include_model: bool
) -> None:
    pytest.importorskip("sklearn")
    from typer.testing import CliRunner

    from gateway.cli import app

    gateway = reviewed.gateway
    wanted = ["--include-model"] if include_model else []
    result = CliRunner().invoke(
        app,
        ["detectors", "train", "human_likeness", "--examples", str(_written_examples(
            tmp_path / "written")), "--no-sentence", "--out", str(tmp_path), "--from-reviews",
         f"{CONTEXT}:scored", "--config", str(gateway.config), *wanted],
        env=gateway.env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model_examples = 1 if include_model else 0
    assert f"from reviews: {6 + model_examples} examples (6 with human, " in result.output
    card = (tmp_path / "human_likeness.md").read_text()
    used = next(line for line in card.splitlines() if line.startswith("- human judgments:"))
    assert all(judgment in used for judgment in reviewed.scored_human.values())
    assert reviewed.hana.id in used and reviewed.scored_model not in used
    assert reviewed.superseded not in card and reviewed.elsewhere not in card
    model_line = next(line for line in card.splitlines() if line.startswith("- model judgments:"))
    assert (reviewed.scored_model in model_line) is include_model


def test_a_threshold_is_calibrated_on_the_models_scores_only() -> None:
    from gateway.evaluation.feedback import _threshold_scores

    model = {"score": 0.97, "source": "injection@sha256:abc"}
    first = {"score": 0.95, "source": "heuristic:injection"}
    assert _threshold_scores([first, model]) == [0.97]
    assert _threshold_scores([first]) == [], "a first stage decided: no model score to move"
    assert _threshold_scores([{"score": 0.4}, {"score": 0.6}]) == [0.4, 0.6]
