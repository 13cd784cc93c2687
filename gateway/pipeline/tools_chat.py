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

from gateway.errors import InvalidRequest, PolicyViolation
from gateway.policy.actions import Action, Stage
from gateway.policy.decision import Decision, Outcome
from gateway.policy.tools import DECLARED, Judged, ToolScope, ToolVerdict

CODE = "tool_not_allowed"
#: with no tools left, what only makes sense beside them goes too (backends reject an empty list)
_WITH_TOOLS = ("tools", "tool_choice", "parallel_tool_calls")
_WITH_FUNCTIONS = ("functions", "function_call")


#: the tool types declared under their own names (any other is judged by its type's name)
NAMED = frozenset({"function", "custom"})


def tool_name(tool: Any) -> str:
    """A tool's name as a ``tool_choice`` or ``allowed_tools`` names it: ``{type: T, T:
    {name}}`` (chat), ``{type: T, name}`` (Responses), a legacy function's ``{name}``; else its
    type, or ''."""
    if not isinstance(tool, dict):
        return ""
    kind = tool.get("type")
    inner = tool.get(kind) if isinstance(kind, str) else None
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        return str(inner["name"])
    if isinstance(tool.get("name"), str):
        return str(tool["name"])
    return kind if isinstance(kind, str) else ""


def declared_name(tool: Any, param: str, *, legacy: bool = False) -> str:
    """The name a backend reads for a declared tool, judged by scope: chat's ``function.name``
    (or ``custom.name``), the Responses API's flat ``name``, a legacy function's ``name``.
    A built-in tool (``web_search``, ``mcp``, ...) is judged by its type. A 400 naming
    ``param`` for a tool scope cannot judge: not an object, no name, two names that disagree,
    or a name on a tool of another type (a backend might read either)."""
    if not isinstance(tool, dict):
        raise _unjudged(param, "a tool is an object")
    kind = tool.get("type", None if legacy else "function" if "function" in tool else None)
    if legacy:
        kind = "function"
    if not isinstance(kind, str):
        raise _unjudged(param, "the tool has no type")
    if kind not in NAMED:
        if {"name", "function", "custom"} & set(tool):
            raise refused(None, f"a tool of type {kind!r} is judged by its type, but it carries "
                          "a name a backend may read instead", param)
        return kind  # a built-in tool (web_search, mcp, ...): in scope by its type's name
    inner = tool.get(str(kind)) if not legacy else None
    named = (tool.get("name"), inner.get("name") if isinstance(inner, dict) else None)
    names = [n for n in named if n is not None]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise _unjudged(param, "the tool has no name")
    if len(set(names)) > 1:
        raise _unjudged(param, f"the tool has two names that disagree ({' and '.join(names)})")
    return str(names[0])


def _unjudged(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': {why}.", param=param,
                          code="invalid_value")


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
    judged = [(i, scope.declared(declared_name(t, f"tools[{i}]"))) for i, t in enumerate(tools)]
    judged_functions = [
        (i, scope.declared(declared_name(f, f"functions[{i}]", legacy=True)))
        for i, f in enumerate(functions)
    ]
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
    judged: list[Judged] = []
    changed = False
    for index, choice in enumerate(answer.get("choices") or ()):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        verdicts = _calls(scope, message)
        judged += [(choice.get("index", index), v, position) for position, v in verdicts]
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
