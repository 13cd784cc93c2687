"""The policy's StrEnums and the words the policy file's schema accepts are the same words, and
a member stands for its string wherever a record, a row or an export carries it."""

from __future__ import annotations

import json
from typing import get_args

from gateway.policy import schema
from gateway.policy.actions import SEVERITY, Action, Enforced, Mode, OnError, Stage
from gateway.policy.decision import Decision, Evidence, Outcome


def _literal(model: type[schema.BaseModel], name: str) -> set[str]:
    return set(get_args(model.model_fields[name].annotation))


def test_the_schema_accepts_exactly_the_enums_words() -> None:
    assert set(get_args(schema.Action)) == set(Action) - {Action.CLAMP, Action.ALLOW}
    assert _literal(schema.Rule, "stage") == set(Stage)
    assert _literal(schema.Rule, "mode") == set(Mode)
    assert _literal(schema.Rule, "on_error") == set(OnError)
    assert {e.value for e in OnError} <= {e.value for e in Enforced}


def test_every_rule_action_has_a_severity_and_allow_none() -> None:
    assert set(SEVERITY) == set(get_args(schema.Action))
    assert SEVERITY.get("block") == SEVERITY[Action.BLOCK]  # a plain string finds its entry
    assert Action.ALLOW not in SEVERITY


def test_a_decision_reads_and_serialises_as_plain_strings() -> None:
    decision = Decision("rev", "demo")
    assert decision.verdict == "allow" and decision.enforced == "allow"
    shadow = Outcome("r", "keywords", "output", "block", [Evidence(0, 0, 4, "x")], mode="shadow")
    shadow.enforced = Enforced.SHADOW
    flagged = Outcome("s", "keywords", "input", "flag", [Evidence(0, 0, 4, "y")])
    decision.add(shadow)
    decision.add(flagged)
    text = json.dumps(decision.as_dict())
    assert '"verdict": "flag", "enforced": "allow"' in text
    assert '"enforced": "shadow"' in text and '"mode": "shadow"' in text
    assert json.loads(text)["outcomes"][1]["enforced"] == "none"
    assert f"{Action.BLOCK}" == "block" and str(Enforced.FAIL_OPEN) == "fail_open"
