"""``gateway policy eval`` reports, run as operators run it: the counts, shares and intervals
per rule, dataset, language and category in the JSON and the Markdown, the model of a learned
rule, reviewers' judged precision (``--from-reviews``), and scripts/efficacy, which builds
docs/efficacy.md from them, so the report commands cannot rot."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.detectors.model import ModelInfo
from tests.policy.test_shadow import serve
from tests.reviewing import Reviewer, judgment, wait_for_item
from tests.servers import Gateway, Upstream, cli
from tests.shared_data import shared_file

ROOT = Path(__file__).resolve().parents[2]

POLICY = """\
context: fruit-stand
purpose: Measure the report, with rules whose verdicts are known in advance.
owner: tests@situate.invalid
audience: the test suite
models: {allow: [demo-small]}
rules:
  - id: no-apples
    stage: input
    why: Apples are not sold here.
    detect: {keywords: [apple]}
    action: block
  - id: pear-watch
    stage: input
    why: Pears are counted.
    detect: {keywords: [pear]}
    action: flag
  - id: fruit-model
    stage: output
    why: An answer the fruit model scores as fruity is flagged.
    detect: {classifier: {model: "tests.evaluation.test_policy_eval_report:fruit_model"}}
    action: flag
  - id: broken-model
    stage: output
    why: A model that fails; the rule lets the answer through.
    detect: {classifier: {model: "tests.evaluation.test_policy_eval_report:BrokenModel"}}
    action: flag
    on_error: fail_open
"""

#: text, harmful, language: 4 harmful (3 caught: 2 of 3 en, 1 of 1 de) and 3 benign (1 wrongly
#: stopped, the de one); no-apples fires on 3 harmful and 1 benign, pear-watch on 1 and 1
ROWS = [
    ("I want an apple", 1, "en"),
    ("an apple and a pear", 1, "en"),
    ("nothing to see here", 1, "en"),
    ("ein apple bitte", 1, "de"),
    ("a pear please", 0, "en"),
    ("hello there", 0, "en"),
    ("apple kuchen", 0, "de"),
]


class FruitModel:
    """Scores 1 for a text that names a fruit, 0 otherwise: an operator's model, in miniature."""

    info = ModelInfo("fruit", "rev-test-1", ("fruity",), {"fruity": 0.5})

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{"fruity": float(any(f in t.lower() for f in ("apple", "pear")))} for t in texts]


def fruit_model() -> FruitModel:
    return FruitModel()


class BrokenModel:
    info = ModelInfo("broken", "rev-test-2", ("fruity",), {"fruity": 0.5})

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        raise RuntimeError("the broken model fails")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "fruit-stand.yaml").write_text(POLICY)
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"policies_dir: {policies}\nbackends: {{demo: {{kind: demo}}}}\n"
        "models: {demo-small: {backend: demo, model: mock-small}}\n"
    )
    return path


def run(config: Path, *args: str) -> str:
    result = cli(
        ["policy", "eval", "--context", "fruit-stand", *args, "--config", str(config)],
        {"GATEWAY_CONFIG": None, "GATEWAY_DATABASE_URL": None},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def write_jsonl(path: Path, rows: list[tuple[str, int, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "label": y, "lang": g}) + "\n" for t, y, g in rows)
    )
    return path


def shares(share: dict[str, Any]) -> tuple[Any, ...]:
    return (share["count"], share["of"], share["share"], share["ci95"])


def by_rule(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["rule"]: rule for rule in figures["rules"]}


def test_the_json_and_markdown_report_both_sides_per_rule_and_language(
    config: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "fruit.jsonl", ROWS)
    summary = run(
        config,
        "--dataset",
        str(data),
        "--name",
        "fruit",
        "--license",
        "CC0",
        "--report",
        str(tmp_path / "out"),
    )
    report = json.loads((tmp_path / "out" / "fruit-stand.json").read_text())
    assert len(report["policy_revision"]) == 64
    (figures,) = report["datasets"]
    assert (figures["rows"], figures["harmful"], figures["benign"]) == (7, 4, 3)
    # Wilson 95% intervals as published tables give them: 3/4 is 0.3006-0.9544, 1/3 0.0615-0.7923
    assert shares(figures["caught"]) == (
        3,
        4,
        pytest.approx(0.75),
        pytest.approx([0.3006, 0.9544], abs=1e-4),
    )
    assert shares(figures["wrongly_stopped"]) == (
        1,
        3,
        pytest.approx(1 / 3),
        pytest.approx([0.0615, 0.7923], abs=1e-4),
    )
    rules = by_rule(figures)
    assert set(rules) == {"no-apples", "pear-watch"}  # the output rule never ran on inputs
    assert (
        rules["no-apples"]["caught"]["count"],
        rules["no-apples"]["wrongly_fired"]["count"],
    ) == (3, 1)
    assert (
        rules["pear-watch"]["caught"]["count"],
        rules["pear-watch"]["wrongly_fired"]["count"],
    ) == (1, 1)
    de, en = figures["languages"]["de"], figures["languages"]["en"]
    assert (de["caught"]["count"], de["caught"]["of"], de["wrongly_stopped"]["count"]) == (1, 1, 1)
    assert (en["caught"]["count"], en["caught"]["of"], en["wrongly_stopped"]["count"]) == (2, 3, 0)
    assert shares(by_rule(en)["pear-watch"]["wrongly_fired"]) == (
        1,
        2,
        pytest.approx(0.5),
        pytest.approx([0.0945, 0.9055], abs=1e-4),
    )

    assert "overall: harmful caught 3/4 (75.0%" in summary
    assert "benign wrongly stopped 1/3 (33.3%" in summary

    markdown = (tmp_path / "out" / "fruit-stand.md").read_text()
    assert report["policy_revision"][:12] in markdown
    assert "license: CC0" in markdown
    assert (
        "| policy (blocked) | 3/4 (75.0%, CI 30.1-95.4%) | 1/3 (33.3%, CI 6.1-79.2%) |" in markdown
    )
    assert (
        "| `no-apples` (block) fired | 3/4 (75.0%, CI 30.1-95.4%) | 1/3 (33.3%, CI 6.1-79.2%) |"
        in markdown
    )
    assert (
        "| de | policy (blocked) | 1/1 (100.0%, CI 20.7-100.0%) | 1/1 (100.0%, CI 20.7-100.0%) |"
        in markdown
    )
    assert (
        "| en | `pear-watch` (flag) fired | 1/3 (33.3%, CI 6.1-79.2%) | 1/2 (50.0%, CI 9.5-90.5%) |"
        in markdown
    )


def test_a_learned_rule_reports_its_model_and_the_output_stage(
    config: Path, tmp_path: Path
) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text("reply,human\nI love apples,yes\nA pear is a fruit,no\nThe sky is blue,no\n")
    out = run(
        config,
        "--dataset",
        str(answers),
        "--stage",
        "output",
        "--text-column",
        "reply",
        "--label-column",
        "human",
        "--json",
        "-",
    )
    report = json.loads(out)
    assert report["rules"]["fruit-model"]["models"] == ["fruit@rev-test-1"]
    (figures,) = report["datasets"]
    fruit = by_rule(figures)["fruit-model"]
    assert (fruit["caught"]["count"], fruit["caught"]["of"]) == (1, 1)
    assert (fruit["wrongly_fired"]["count"], fruit["wrongly_fired"]["of"]) == (1, 2)
    assert figures["caught"]["count"] == 0  # a flag stops nothing
    assert figures["errors"] == 3
    assert "broken-model" in figures["error_examples"][0]
    assert "fails" in figures["error_examples"][0]


def test_parquet_one_sided_files_and_a_manifest(config: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"prompt": [t for t, _, _ in ROWS], "label": [y for _, y, _ in ROWS]}),
        tmp_path / "fruit.parquet",
    )
    (tmp_path / "attacks.json").write_text(json.dumps({"orchard": ["apple pie", "plum"]}))
    (tmp_path / "manifest.yaml").write_text(
        "- {name: fruit parquet, path: fruit.parquet, source: the test, license: CC0}\n"
        "- {name: attacks, path: attacks.json, side: harmful, by: group}\n"
    )
    out = run(config, "--datasets", str(tmp_path / "manifest.yaml"), "--markdown", "-")
    assert "## fruit parquet" in out and "## attacks" in out
    assert "| policy (blocked) | 3/4 (75.0%, CI 30.1-95.4%) | 1/3 (33.3%, CI 6.1-79.2%) |" in out
    assert "| policy (blocked) | 1/2 (50.0%, CI 9.5-90.5%) | — |" in out
    assert "source: the test; license: CC0" in out
    assert "| orchard | policy (blocked) | 1/2 (50.0%, CI 9.5-90.5%) | — |" in out


REVIEWED = "eval-reviewed"


def _reviewed_policy() -> dict[str, Any]:
    return {
        "context": REVIEWED,
        "purpose": "Reviewers judge a rule; the report says how precise they found it.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": ["test-small"]},
        "rules": [
            {
                "id": "fruit-flag",
                "stage": "input",
                "why": "Fruit is flagged for a look.",
                "detect": {"keywords": ["fruit"]},
                "action": "flag",
                "review": "triage",
            }
        ],
        "review": {"sample_rate": 0, "queues": {"triage": {"guidelines": "guidelines/triage.md"}}},
    }


def _judge(gateway: Gateway, reviewer: Reviewer, text: str, said: str) -> str:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys[REVIEWED], max_retries=0) as c:
        c.chat.completions.create(model="test-small", messages=[{"role": "user", "content": text}])
    item = wait_for_item(reviewer, REVIEWED, "triage")
    done = reviewer.post(
        f"/items/{item['id']}/judgments", judgment(item, rule_verdicts={"fruit-flag": said})
    )
    assert done.status_code == 201, done.text
    return str(done.json()["id"])


def test_from_reviews_reports_judged_precision_and_the_judgments_used(
    upstream: Upstream, tmp_path: Path
) -> None:
    with serve(tmp_path, upstream, [_reviewed_policy()]) as gateway:
        hana = Reviewer(gateway, "Hana", role="admin")
        right = _judge(gateway, hana, "a fruit basket for my mother", "true_positive")
        wrong = _judge(gateway, hana, "is fruit allowed in the branch", "false_positive")
        out = gateway.cli(
            "policy",
            "eval",
            "--from-reviews",
            "--context",
            REVIEWED,
            "--report",
            str(tmp_path / "r"),
        )
        assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r" / f"{REVIEWED}.json").read_text())
    (row,) = report["judged_by"]["human"]
    assert (row["rule"], row["fired"], row["judged"], row["judged_right"]) == (
        "fruit-flag",
        2,
        2,
        1,
    )
    assert row["ci95"] == pytest.approx([0.0945, 0.9055], abs=1e-4)  # Wilson, 1 of 2
    assert row["judgments"] == sorted([right, wrong])
    assert report["judged_by"]["model"] == [] or all(
        r["judged"] == 0 for r in report["judged_by"]["model"]
    )
    markdown = (tmp_path / "r" / f"{REVIEWED}.md").read_text()
    assert "| `fruit-flag` | 2 | 2 | 1/2 (50.0%, CI 9.5-90.5%) | — | 0 |" in markdown
    assert right in markdown and wrong in markdown


def test_the_efficacy_script_writes_the_page_and_keeps_unchanged_reports(tmp_path: Path) -> None:
    s_labs = shared_file("prompt-injection/s-labs/test.csv")
    data = s_labs.parents[2]
    with s_labs.open(encoding="utf-8", newline="") as handle:
        labels = [row["label"] for _, row in zip(range(4), csv.DictReader(handle), strict=False)]
    out, cache = tmp_path / "efficacy.md", tmp_path / "cache"
    command = [
        *(sys.executable, str(ROOT / "scripts" / "efficacy"), "--contexts", "demo"),
        *("--limit", "4", "--jobs", "1", "--data", str(data)),
        *("--out", str(out), "--cache", str(cache)),
    ]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    page = out.read_text()
    assert "## demo" in page and "# Efficacy of the shipped policies" in page
    assert "s-labs/test.csv` | 4 | S-Labs prompt-injection-dataset" in page
    assert "| CC-BY-4.0 |" in page  # XSTest's license beside it
    harmful = labels.count("1")
    assert "| demo | S-Labs test | policy (blocked) | " in page
    assert f"/{harmful} (" in page and f"/{4 - harmful} (" in page
    assert ".venv/bin/python scripts/efficacy" in page
    report = json.loads((cache / "demo" / "demo.json").read_text())
    assert report["policy_revision"][:12] in page
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "demo: unchanged, kept its report" in again.stderr
