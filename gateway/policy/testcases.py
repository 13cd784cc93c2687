"""Test cases kept beside each policy (``<context>.tests.yaml``), and running them.

    cases:
      - name: a stolen card is in scope
        input: my card was stolen, what do I do?
        expect: {action: allow, not_fires: [scope.topic]}
      - name: investment advice is blocked
        output: You should buy shares of ACME, a guaranteed return.
        expect: {action: block, fires: [no-investment-advice]}

Reviewers' verdicts that a rule fired wrongly become candidate cases in the same shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.evaluate import evaluate
from gateway.policy.locate import PolicyError, duplicate_keys, parse, validation_problems


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["allow", "block", "redact", "flag", "warn", "route", "clamp"] | None = None
    fires: list[str] = []
    not_fires: list[str] = []


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    input: str | None = None
    output: str | None = None
    expect: Expect
    source: str | None = Field(None, description="where the case came from, e.g. a review")

    @model_validator(mode="after")
    def _one_text(self) -> Case:
        if (self.input is None) == (self.output is None):
            raise ValueError("a case has exactly one of input or output")
        return self


class CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: list[Case] = []


def tests_path(policy_path: Path) -> Path:
    return policy_path.with_name(policy_path.stem + ".tests.yaml")


def load_cases(path: Path) -> list[Case]:
    """The cases of a file, or a ValueError listing every problem as ``file:line: message``."""
    try:
        data, root = parse(path, path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}:1: unreadable: {exc.strerror}") from exc
    except PolicyError as exc:
        raise ValueError(str(exc)) from exc
    problems = duplicate_keys(path, root)
    try:
        cases = CaseFile.model_validate(data or {}).cases
    except ValidationError as exc:
        problems += validation_problems(path, exc, data, root)
    if problems:
        raise ValueError(str(PolicyError(problems)))
    return cases


def run_case(policy: CompiledPolicy, case: Case) -> list[str]:
    """Every way the case fails; empty when it passes."""
    stage = Stage.INPUT if case.input is not None else Stage.OUTPUT
    verdict = evaluate(policy, case.input if case.input is not None else case.output or "", stage)
    fired = set(verdict.fired())
    failures = []
    if case.expect.action is not None and verdict.action != case.expect.action:
        # str(): the words, not the enums' reprs, whichever the verdict holds
        failures.append(f"action {str(verdict.action)!r}, expected {case.expect.action!r}")
    failures += [f"rule {r!r} did not fire" for r in case.expect.fires if r not in fired]
    failures += [f"rule {r!r} fired" for r in case.expect.not_fires if r in fired]
    return failures
