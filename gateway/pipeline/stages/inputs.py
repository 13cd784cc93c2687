"""The input stage: the policy's input rules and topic scope applied to a request's body.

``admit`` returns what goes upstream (the body with redactions made and the declared tools out
of scope removed, the model alias after any route) or the refusal to answer with; the judging
is ``gateway.policy.judge``'s (and the tools' ``gateway.policy.tools``'). Tool results
(``tool`` and legacy ``function`` messages) are inputs the rules read. Messages are
copied only where a redaction changes them: the client's body is never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.checks.spans import redact
from gateway.errors import InvalidRequest, PolicyViolation
from gateway.pipeline.stages.limits import apply_limits, choose_model, limit_embedding_tokens
from gateway.pipeline.tools_chat import scope_declared
from gateway.policy.actions import Action, Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.engine import TextRef, message_texts, run_rules
from gateway.policy.judge import Spans, judge_input, mark_enforced, moot, redaction_spans


@dataclass(slots=True)
class Admission:
    body: dict[str, Any]
    alias: str
    refusal: str | None = None


def admit(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> Admission:
    alias = choose_model(policy, body, decision)
    body = scope_declared(policy.tools, body, decision)
    messages = body.get("messages") or []
    refs = tool_results(message_texts(messages))
    body = apply_limits(policy, body, refs, decision)
    verdict = judge_input(policy, refs, decision)
    if verdict.refusal is not None:
        return Admission(body, alias, verdict.refusal)
    spans = verdict.spans
    if spans:
        body = {**body, "messages": redacted_messages(messages, spans)}
    if verdict.route is not None:
        decision.routed_to = alias = verdict.route
    return Admission(body, alias)


def tool_results(refs: list[TextRef]) -> list[TextRef]:
    """Tool results are inputs like the user's: a legacy ``function`` message is one, read by
    the rules that read ``tool`` messages (an injection in a fetched page is caught either way)."""
    return [
        TextRef(ref.message, ref.part, "tool", ref.text) if ref.role == "function" else ref
        for ref in refs
    ]


def redacted_messages(messages: list[Any], spans: Spans) -> list[Any]:
    """A copy of the messages with the spans replaced; only the changed ones are copied."""
    copied = list(messages)
    for (index, part), found in spans.items():
        message = copied[index] = dict(copied[index])
        if part is None:
            message["content"] = redact(message["content"], found)
        else:
            parts = message["content"] = list(message["content"])
            parts[part] = {**parts[part], "text": redact(parts[part]["text"], found)}
    return copied


def embedding_texts(body: dict[str, Any]) -> list[TextRef] | None:
    """Each embedding input as a text the input rules read (as a user's); None for token
    arrays, which no detector can read."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not all(isinstance(item, str) for item in items):
        return None
    return [TextRef(index, None, "user", text) for index, text in enumerate(items)]


def refuse_tokens(policy: CompiledPolicy, decision: Decision, *, param: str) -> None:
    """Token arrays (in the request's ``param``) pass only where no input rule would have read
    the text."""
    readers = [rule.id for rule in policy.rules_for(Stage.INPUT) if "user" in rule.spec.roles]
    if not readers:
        return
    outcome = Outcome(
        "input.token_arrays",
        "limit",
        Stage.INPUT,
        Action.BLOCK,
        [Evidence(-1, 0, 0, "input:token_arrays")],
        enforced=Action.BLOCK,
        why=f"token arrays cannot be read by the input rules ({', '.join(readers)})",
    )
    decision.add(outcome)
    raise InvalidRequest(
        "This deployment's policy checks the text of every input, and token arrays cannot be "
        f"checked: send '{param}' as a string or a list of strings.",
        param=param,
        code="unsupported_input",
    )


def admit_embeddings(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> Admission:
    """The input rules on embedding inputs: a block is always the error (there is no answer to
    refuse in), redactions are made before the input goes upstream, flags and warnings hold;
    routes are not followed (their targets are chat models) and the topic scope is chat's."""
    alias = choose_model(policy, body, decision)
    refs = embedding_texts(body)
    limit_embedding_tokens(policy, body, refs, decision)
    if refs is None:
        refuse_tokens(policy, decision, param="input")
        return Admission(body, alias)
    fired = run_rules(policy, decision, Stage.INPUT, refs)
    blocking = mark_enforced(fired)
    moot([(rule, outcome) for rule, outcome in fired if rule.action == Action.ROUTE])
    if blocking is not None:
        raise PolicyViolation(blocking.id, blocking.spec.why, Stage.INPUT)
    spans = redaction_spans(fired)
    texts = [redact(ref.text, spans.get((ref.message, None), [])) for ref in refs]
    value = texts[0] if isinstance(body["input"], str) else texts
    return Admission({**body, "input": value}, alias)


def first_turn(body: dict[str, Any]) -> bool:
    return not any(
        isinstance(m, dict) and m.get("role") == "assistant" for m in body.get("messages") or ()
    )
