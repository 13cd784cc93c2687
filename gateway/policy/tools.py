"""Tool-call scope: the one check every path asks about a tool (``policy.tools``).

A context's policy lists the tools it may use (names or ``fnmatch`` patterns, each with an
optional JSON Schema for its arguments). ``ToolScope`` is that list compiled once per policy
revision, and the only place a tool is judged: a tool declared in a request (chat's ``tools``
and legacy ``functions``, the Responses API's ``tools``), and a call the model makes (chat's
``tool_calls`` and ``function_call``, a Responses ``function_call`` item), whole or streamed.
Every verdict is put on the decision (``note_declared``, ``note_calls``): rule ``tools.declared``
(stage input) and ``tools.call`` (stage output), detector ``tool_scope``, one piece of evidence
per tool with the tool's name in its label and what was wrong in the outcome's ``why``.

A policy without a ``tools`` section does not govern tools: ``ToolScope.active`` is False and
every tool is in scope, as before tool scope existed.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.policy.actions import Action, Stage
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.schema import Tools, load_jsonschema

DECLARED = "tools.declared"
CALLED = "tools.call"
DETECTOR = "tool_scope"

Reason = Literal["ok", "out_of_scope", "bad_arguments", "unreadable_arguments"]


@dataclass(frozen=True, slots=True)
class ToolVerdict:
    """One tool judged: its name, whether it is in scope, and if not, why (in words)."""

    name: str
    reason: Reason = "ok"
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.reason == "ok"

    @property
    def label(self) -> str:
        return f"{self.reason}:{self.name}"


@dataclass(frozen=True, slots=True)
class _Allowed:
    pattern: re.Pattern[str]
    name: str
    validator: Any  # a jsonschema validator, or None: any arguments


class ToolScope:
    """A policy's tool scope, compiled: ``declared`` and ``call`` judge one tool each."""

    def __init__(self, spec: Tools | None) -> None:
        self.spec = spec
        rules = spec.allow if spec else ()
        self._allowed = tuple(_compile(rule.name, rule.arguments) for rule in rules)

    @property
    def active(self) -> bool:
        return self.spec is not None

    def _match(self, name: str) -> _Allowed | None:
        return next((a for a in self._allowed if a.pattern.fullmatch(name)), None)

    def declared(self, name: str) -> ToolVerdict:
        """A tool offered to the model: in scope by its name alone."""
        if not self.active or self._match(name) is not None:
            return ToolVerdict(name)
        return _out_of_scope(name)

    def call(self, name: str, arguments: str | dict[str, Any] | None) -> ToolVerdict:
        """A call the model made: in scope by name, and its arguments (the JSON text a call
        carries, or the object) satisfy the tool's schema if it has one."""
        if not self.active:
            return ToolVerdict(name)
        allowed = self._match(name)
        if allowed is None:
            return _out_of_scope(name)
        if allowed.validator is None:
            return ToolVerdict(name)
        value = _arguments(arguments)
        if value is _UNREADABLE:
            detail = f"the call to '{name}' has arguments that are not JSON"
            return ToolVerdict(name, "unreadable_arguments", detail)
        from jsonschema.exceptions import best_match  # imported once a schema is compiled

        error = best_match(allowed.validator.iter_errors(value))
        if error is None:
            return ToolVerdict(name)
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        return ToolVerdict(name, "bad_arguments", f"'{name}' {where}: {error.message}"[:500])

    # What was decided, on the decision.

    def note_declared(
        self, decision: Decision, verdicts: Iterable[tuple[int, ToolVerdict]]
    ) -> Outcome | None:
        """The declared tools out of scope (each with its position in the request's list),
        as one outcome: ``redact`` when they are removed, ``block`` when the request is
        refused. None when every tool was in scope."""
        spec = self.spec
        out = [(i, v) for i, v in verdicts if not v.allowed]
        if spec is None or not out:
            return None
        action = Action.REDACT if spec.on_declared == "remove" else Action.BLOCK
        outcome = _outcome(DECLARED, Stage.INPUT, action, out, spec.review)
        outcome.enforced = action
        decision.add(outcome)
        return outcome

    def note_calls(
        self,
        decision: Decision,
        verdicts: Iterable[Judged],
        *,
        enforced: bool = True,
    ) -> Outcome | None:
        """The calls out of scope (each with its choice, or output item, index, and where it
        can say so the call's position in that choice: its evidence's ``part``, -1 for a
        legacy ``function_call``) as one outcome with the policy's ``on_call`` action;
        ``enforced`` False when nothing could be done about it (the call had already gone
        out). None when every call was in scope."""
        spec = self.spec
        out = [judged for judged in verdicts if not judged[1].allowed]
        if spec is None or not out:
            return None
        action = Action(spec.on_call)
        outcome = _outcome(CALLED, Stage.OUTPUT, action, out, spec.review)
        outcome.enforced = action if enforced else "none"
        decision.add(outcome)
        return outcome

    @property
    def blocks_calls(self) -> bool:
        """Whether a call out of scope is taken out of the answer (so a stream holds each
        call back until it is whole and judged)."""
        return self.spec is not None and self.spec.on_call == "block"

    @property
    def refusal(self) -> str:
        return self.spec.refusal if self.spec else ""


_UNREADABLE = object()
#: a tool judged: its index (in the request's list, or the answer's choice or output item),
#: its verdict, and for a call its position in that choice where the caller knows it
Judged = tuple[int, ToolVerdict] | tuple[int, ToolVerdict, int]


def _out_of_scope(name: str) -> ToolVerdict:
    return ToolVerdict(name, "out_of_scope", f"the tool '{name}' is not in this context's scope")


def _arguments(arguments: str | dict[str, Any] | None) -> Any:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments)
    except (TypeError, ValueError, RecursionError):
        return _UNREADABLE


def _compile(name: str, schema: dict[str, Any] | None) -> _Allowed:
    validator = None
    if schema is not None:
        # only where a policy constrains a tool's arguments, not at every command's start
        jsonschema = load_jsonschema()
        validator = jsonschema.validators.validator_for(schema)(schema)
    return _Allowed(re.compile(fnmatch.translate(name)), name, validator)


def _outcome(
    rule: str, stage: Stage, action: Action, out: Sequence[Judged], review: str | None
) -> Outcome:
    why = "; ".join(judged[1].detail for judged in out)
    evidence = [
        Evidence(judged[0], 0, 0, judged[1].label, part=judged[2] if len(judged) > 2 else None)
        for judged in out
    ]
    return Outcome(rule, DETECTOR, stage, action, evidence, why=why, review=review)
