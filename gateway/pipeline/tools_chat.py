"""Tool-call scope on chat completions, whole (``policy.tools``; the one check is
``gateway.policy.tools.ToolScope``).

- The tools a request declares (``tools``, legacy ``functions``) are judged before the model
  sees them: one out of scope is taken out of the body that goes upstream (a copy: the record
  keeps the client's body), or the request is refused (``on_declared: refuse``). A
  ``tool_choice`` (or legacy ``function_call``) that names a removed tool is refused: the
  client asked for exactly what the policy took away.
- The calls of a whole answer (``message.tool_calls``, legacy ``message.function_call``) are
  judged when it comes back: with ``on_call: block`` a call out of scope is taken out of what
  the client gets (the record keeps the backend's answer; the decision says what was done).

Streams are ``tools_stream``'s.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import PolicyViolation
from gateway.policy.actions import Action, Stage
from gateway.policy.decision import Decision, Outcome
from gateway.policy.tools import DECLARED, ToolScope, ToolVerdict

CODE = "tool_not_allowed"
#: with no tools left, what only makes sense beside them goes too (backends reject an empty list)
_WITH_TOOLS = ("tools", "tool_choice", "parallel_tool_calls")
_WITH_FUNCTIONS = ("functions", "function_call")


def tool_name(tool: Any) -> str:
    """A declared tool's name: ``{type: function, function: {name}}`` (or another type's
    ``{type: T, T: {name}}``), a legacy function's ``{name}``; else its type, or ''."""
    if not isinstance(tool, dict):
        return ""
    kind = tool.get("type")
    inner = tool.get(kind) if isinstance(kind, str) else None
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        return str(inner["name"])
    if isinstance(tool.get("name"), str):
        return str(tool["name"])
    return kind if isinstance(kind, str) else ""


def refused(outcome: Outcome | None, why: str, param: str) -> PolicyViolation:
    """The request refused over a tool: a policy block (400, never retried) naming the field."""
    if outcome is not None:
        outcome.enforced = Action.BLOCK
    error = PolicyViolation(DECLARED, why, Stage.INPUT)
    error.param, error.code = param, CODE
    return error


def scope_declared(scope: ToolScope, body: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The body with the declared tools out of scope removed (a new dict when it changes), or
    PolicyViolation raised when the policy refuses them or the request names a removed one."""
    if not scope.active:
        return body
    tools, functions = _listed(body, "tools"), _listed(body, "functions")
    judged = [(i, scope.declared(tool_name(t))) for i, t in enumerate(tools)]
    judged_functions = [(i, scope.declared(tool_name(f))) for i, f in enumerate(functions)]
    outcome = scope.note_declared(decision, judged + judged_functions)
    if outcome is None:
        return body
    out = [("tools", i, v) for i, v in judged if not v.allowed]
    out += [("functions", i, v) for i, v in judged_functions if not v.allowed]
    if outcome.enforced == Action.BLOCK:
        field, index, verdict = out[0]
        raise refused(None, verdict.detail, f"{field}[{index}]")
    body = dict(body)
    removed = {v.name for _, _, v in out}
    for field, choice, declared, verdicts in (
        ("tools", "tool_choice", tools, judged),
        ("functions", "function_call", functions, judged_functions),
    ):
        if declared:
            kept = [declared[i] for i, verdict in verdicts if verdict.allowed]
            _choice_in_scope(outcome, body, choice, removed, left=bool(kept))
            _keep(body, field, kept)
    return body


def _listed(body: dict[str, Any], field: str) -> list[Any]:
    value = body.get(field)
    return value if isinstance(value, list) else []


def _keep(body: dict[str, Any], field: str, kept: list[Any]) -> None:
    """The tools in scope stay; with none left, what only goes with them goes too."""
    if kept:
        body[field] = kept
        return
    for name in _WITH_TOOLS if field == "tools" else _WITH_FUNCTIONS:
        body.pop(name, None)


def _choice_in_scope(
    outcome: Outcome, body: dict[str, Any], field: str, removed: set[str], *, left: bool
) -> None:
    """A choice that names a removed tool (or requires a call when none is left) is refused;
    ``allowed_tools`` keeps the ones in scope."""
    choice = body.get(field)
    if choice == "required" and not left:
        why = "a call is required, but no declared tool is in scope"
        raise _choice_refused(outcome, field, why)
    if not isinstance(choice, dict):
        return
    allowed = choice.get("allowed_tools")
    if choice.get("type") == "allowed_tools" and isinstance(allowed, dict):
        listed = [t for t in allowed.get("tools") or () if tool_name(t) not in removed]
        if not listed:
            raise _choice_refused(outcome, field, "none of its allowed tools is in scope")
        body[field] = {**choice, "allowed_tools": {**allowed, "tools": listed}}
        return
    name = tool_name(choice)
    if name in removed:
        raise _choice_refused(outcome, field, f"it names '{name}', a tool not in scope")


def _choice_refused(outcome: Outcome, field: str, why: str) -> PolicyViolation:
    return refused(outcome, f"the request's {field} cannot be honoured: {why}", field)


# The calls of a whole answer.


def scope_calls(scope: ToolScope, answer: dict[str, Any], decision: Decision) -> bool:
    """Judge every call of a whole answer (its choices already copies the gateway may
    change); with ``on_call: block`` the calls out of scope are taken out. True when the
    answer changed."""
    if not scope.active:
        return False
    judged: list[tuple[int, ToolVerdict]] = []
    changed = False
    for index, choice in enumerate(answer.get("choices") or ()):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        verdicts = _calls(scope, message)
        judged += [(choice.get("index", index), v) for _, v in verdicts]
        if scope.blocks_calls and any(not v.allowed for _, v in verdicts):
            _remove(scope, choice, message, verdicts)
            changed = True
    scope.note_calls(decision, judged, enforced=True)
    return changed


def _calls(scope: ToolScope, message: dict[str, Any]) -> list[tuple[int, ToolVerdict]]:
    """Each call of a message judged, by its position (-1: the legacy ``function_call``)."""
    verdicts = []
    for position, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        verdicts.append((position, scope.call(str(name or ""), function.get("arguments"))))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        verdicts.append((-1, scope.call(str(legacy.get("name") or ""), legacy.get("arguments"))))
    return verdicts


def _remove(
    scope: ToolScope,
    choice: dict[str, Any],
    message: dict[str, Any],
    verdicts: list[tuple[int, ToolVerdict]],
) -> None:
    """The blocked calls out of the (copied) message; none left: the refusal instead."""
    dropped = {position for position, verdict in verdicts if not verdict.allowed}
    calls = [c for p, c in enumerate(message.get("tool_calls") or ()) if p not in dropped]
    if "tool_calls" in message:
        message["tool_calls"] = calls or None
    if -1 in dropped:
        message["function_call"] = None
    elif message.get("function_call") is not None:
        return  # the legacy call stands
    if calls:
        if choice.get("finish_reason") != "content_filter":  # an output rule's block stands
            choice["finish_reason"] = "tool_calls"
        return
    if not message.get("content"):
        message["content"] = scope.refusal
    message["refusal"] = scope.refusal
    choice["finish_reason"] = "content_filter"
