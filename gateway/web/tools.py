"""Tools as a reviewer reads them: the calls a model made (name, arguments pretty-printed),
the results sent back (with the call each answers), the tools a request offered, and what the
policy's tool scope decided about each (rules ``tools.declared`` and ``tools.call``, whose
evidence names the tool in its label, ``reason:name``, at the tool's or the choice's index).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.policy.tools import CALLED, DECLARED

TOOL_RULES = (DECLARED, CALLED)
_REASONS = {
    "out_of_scope": "not in this context's scope",
    "bad_arguments": "arguments break the tool's constraints",
    "unreadable_arguments": "arguments are not JSON",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The tool scope on one tool: why it was out of scope and what was done."""

    reason: str
    enforced: str

    @property
    def text(self) -> str:
        done = "nothing done" if self.enforced in ("none", "allow") else self.enforced
        return f"{_REASONS.get(self.reason, self.reason)}: {done}"


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # pretty-printed where it is JSON, else as sent
    verdict: Verdict | None = None


@dataclass(frozen=True, slots=True)
class Offered:
    name: str
    description: str
    verdict: Verdict | None = None


def pretty(arguments: Any) -> str:
    """A call's arguments as a reviewer reads them: indented JSON where they parse."""
    value = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(value, ensure_ascii=False, indent=2)


def verdicts(decision: Any, rule: str) -> dict[tuple[int, str], Verdict]:
    """The tool scope's verdicts of one rule, by (index, key): the key is a call's position
    in its choice as ``#position`` where the evidence says it (its ``part``), else the tool's
    name (a declared tool, or a call recorded before positions were)."""
    outcomes = decision.get("outcomes") if isinstance(decision, dict) else None
    found = {}
    for outcome in outcomes or []:
        if not isinstance(outcome, dict) or outcome.get("rule") != rule:
            continue
        for ev in outcome.get("evidence") or []:
            reason, _, name = str(ev.get("label", "")).partition(":")
            enforced = str(outcome.get("enforced") or "none")
            part = ev.get("part")
            key = f"#{part}" if isinstance(part, int) else name
            found[(int(ev.get("message", -1)), key)] = Verdict(reason, enforced)
    return found


def calls(message: dict[str, Any], judged: dict[str, Verdict]) -> list[ToolCall]:
    """A message's tool calls (and a legacy ``function_call``, position -1), each with its
    verdict (``judged``: the verdicts on the message's choice) by its position, or by the
    tool's name on a record that does not say positions."""
    listed = message.get("tool_calls")
    raw = list(enumerate(listed)) if isinstance(listed, list) else []
    if isinstance(message.get("function_call"), dict):
        raw.append((-1, {"function": message["function_call"]}))
    positioned = any(key.startswith("#") for key in judged)
    shown = []
    for position, call in raw:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        name = str(function.get("name") or "?")
        verdict = judged.get(f"#{position}" if positioned else name)
        arguments = pretty(function.get("arguments"))
        shown.append(ToolCall(str(call.get("id") or ""), name, arguments, verdict))
    return shown


def on_choice(found: dict[tuple[int, str], Verdict], index: int) -> dict[str, Verdict]:
    return {name: v for (i, name), v in found.items() if i == index}


def offered(request: Any, decision: Any) -> list[Offered]:
    """The tools a request offered the model (chat's ``tools`` and legacy ``functions``),
    each with the tool scope's verdict (by its position in the request's list)."""
    if not isinstance(request, dict):
        return []
    found = verdicts(decision, DECLARED)
    tools = _list(request, "tools")
    functions = [t.get("function") if isinstance(t, dict) else None for t in tools]
    shown = []
    for listed in (functions, _list(request, "functions")):  # each indexed on its own
        for index, tool in enumerate(listed):
            if isinstance(tool, dict):
                name = str(tool.get("name") or "?")
                description = str(tool.get("description") or "")
                shown.append(Offered(name, description, found.get((index, name))))
    return shown


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    return value if isinstance(value, list) else []


def judged_tools(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """A tool rule's evidence as (tool, why in words), for the list of what fired."""
    if outcome.get("rule") not in TOOL_RULES:
        return []
    shown = []
    for ev in outcome.get("evidence") or []:
        reason, _, name = str(ev.get("label", "")).partition(":")
        shown.append((name, _REASONS.get(reason, reason)))
    return shown
