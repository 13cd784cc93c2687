"""The guardrails-ai bridge: validators as detectors, detectors as validators, nothing sent out.

guardrails is an optional extra; CI installs it (and sets SITUATE_REQUIRE_GUARDRAILS=1 so its
absence fails rather than skips).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if os.environ.get("SITUATE_REQUIRE_GUARDRAILS") != "1":
    pytest.importorskip("guardrails", reason="the guardrails extra is not installed")

from gateway.checks.base import CheckConfigError
from gateway.checks.registry import default_registry
from gateway.policy.evaluate import evaluate
from gateway.policy.loader import load_policy

POLICY = """\
context: guarded
purpose: Run guardrails validators as policy rules.
owner: tests@situate.invalid
audience: the test suite
models: {{allow: [demo-small]}}
rules:
  - id: no-bananas
    stage: input
    why: Bananas are not discussed here.
    detect: {{guardrails: {{validator: {validator}, args: {{word: banana}}}}}}
    action: block
  - id: exploding
    stage: output
    why: A validator that raises must fail the request closed.
    detect: {{guardrails: {{validator: "tests.guardrails_fixtures:Exploding"}}}}
    action: flag
"""


@pytest.mark.parametrize("validator", ["tests.guardrails_fixtures:NoBananas", "tests/no-bananas"])
def test_a_guardrails_validator_runs_as_a_policy_rule(tmp_path: Path, validator: str) -> None:
    import tests.guardrails_fixtures  # noqa: F401  (registers tests/no-bananas)

    path = tmp_path / "guarded.yaml"
    path.write_text(POLICY.format(validator=f'"{validator}"'))
    policy = load_policy(path, default_registry(), ["demo-small"])
    verdict = evaluate(policy, "I would like a banana split")
    assert verdict.action == "block"
    (outcome,) = verdict.decision.fired
    assert (outcome.rule, outcome.detector) == ("no-bananas", "guardrails")
    assert (outcome.evidence[0].start, outcome.evidence[0].end) == (15, 21)
    assert evaluate(policy, "I would like an apple").action == "allow"
    failed = evaluate(policy, "any answer", stage="output")
    assert failed.action == "error"  # 503 policy_unavailable: failed closed
    assert failed.decision.outcomes[0].enforced == "fail_closed"


def test_unknown_validators_are_config_errors() -> None:
    registry = default_registry()
    with pytest.raises(CheckConfigError, match="no guardrails validator named"):
        registry.create("guardrails", {"validator": "hub/not-installed"})
    with pytest.raises(CheckConfigError, match="cannot import"):
        registry.create("guardrails", "nowhere.module:Nothing")


def test_the_gateways_detectors_are_guardrails_validators() -> None:
    from guardrails import Guard

    from gateway.checks.guardrails_validators import SituatePII

    validator = SituatePII(params=["email"], on_fail="fix")
    result = validator.validate("write to ana@example.org today", {})
    assert result.outcome == "fail"
    assert result.fix_value == "write to [email] today"
    assert [(s.start, s.end) for s in result.error_spans] == [(9, 24)]
    guard = Guard().use(SituatePII(params=["email"], on_fail="fix"))
    outcome = guard.validate("write to ana@example.org today")
    assert outcome.validated_output == "write to [email] today"
    assert outcome.validation_summaries[0].validator_status == "fail"


PROBE = textwrap.dedent("""
    import json, sys
    events = []
    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
            events.append([event, repr(args[1] if event == "socket.connect" else args[0])])
    sys.addaudithook(hook)
    from gateway.checks.registry import default_registry
    check = default_registry().create(
        "guardrails", {"validator": "tests.guardrails_fixtures:NoBananas"})
    for _ in range(20):
        check.find("a banana and a private prompt")
    from guardrails import Guard
    from gateway.checks.guardrails_validators import SituatePII
    Guard().use(SituatePII(params=["email"], on_fail="fix")).validate("mail ana@example.org")
    import guardrails
    print(json.dumps({"events": events,
                      "metrics": guardrails.settings.rc.enable_metrics,
                      "remote": guardrails.settings.rc.use_remote_inferencing}))
""")


def test_guardrails_sends_nothing_off_the_host(tmp_path: Path) -> None:
    """Every socket the process opens while guardrails works is recorded by an audit hook."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}  # no operator .guardrailsrc to lean on
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["metrics"] is False and report["remote"] is False
    outside = [
        e
        for e in report["events"]
        if not any(local in e[1] for local in ("127.0.0.1", "localhost", "::1", "/"))
    ]
    assert outside == [], outside
