"""Holding a request and its answer to the context's policy: scope, limits, rules, disclosure.

``admit`` decides what (if anything) goes upstream; ``review_answer`` decides what of a
non-streaming answer reaches the client. Both fill the exchange's ``Decision``; a block is
either a ``PolicyViolation`` error or a refusal answer, as the rule says.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest, NotFound, PolicyViolation
from gateway.policy.compiled import CompiledPolicy, CompiledRule
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.engine import TextRef, message_texts, redact, run_rules


@dataclass(slots=True)
class Admission:
    body: dict[str, Any]
    alias: str
    refusal: str | None = None


def _limit(decision: Decision, rule: str, label: str, action: str = "block") -> Outcome:
    outcome = Outcome(
        rule,
        "limit",
        "input",
        action,
        [Evidence(-1, 0, 0, label)],
        enforced=action,
        why=f"the context's {rule} limit",
    )
    decision.add(outcome)
    return outcome


def choose_model(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> str:
    alias = body.get("model") or policy.policy.models.default
    allowed = policy.policy.models.allow
    if not isinstance(alias, str):
        raise InvalidRequest("Invalid value for 'model': a model alias is required.", param="model")
    if alias not in allowed:
        _limit(decision, "scope.models", f"model:{alias}")
        raise NotFound(
            f"The model '{alias}' does not exist or you do not have access to it. "
            f"Models available: {', '.join(allowed)}.",
            code="model_not_found",
            param="model",
        )
    return alias


def _estimate_tokens(refs: list[TextRef]) -> int:
    # About four characters a token for English text: an estimate, stated as such in the docs.
    return math.ceil(sum(len(ref.text) for ref in refs) / 4)


def apply_limits(
    policy: CompiledPolicy, body: dict[str, Any], refs: list[TextRef], decision: Decision
) -> None:
    limits = policy.policy.limits
    checks = (
        ("limits.max_messages", "messages", limits.max_messages, len(body.get("messages") or ())),
        ("limits.max_n", "n", limits.max_n, body.get("n") or 1),
        ("limits.max_input_tokens", "messages", limits.max_input_tokens, _estimate_tokens(refs)),
    )
    for rule, param, limit, value in checks:
        if limit is not None and value > limit:
            _limit(decision, rule, f"{param}:{value}>{limit}")
            raise InvalidRequest(
                f"'{param}' exceeds this deployment's limit ({value} > {limit}).",
                param=param,
                code="limit_exceeded",
            )
    _limit_output(policy, body, decision)


def _limit_output(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> None:
    limit = policy.policy.limits.max_output_tokens
    if limit is None:
        return
    asked = [
        (k, body[k])
        for k in ("max_tokens", "max_completion_tokens")
        if isinstance(body.get(k), int)
    ]
    if not asked:
        body["max_tokens"] = limit
        return
    for key, value in asked:
        if value <= limit:
            continue
        if policy.policy.limits.on_max_tokens == "reject":
            _limit(decision, "limits.max_output_tokens", f"{key}:{value}>{limit}")
            raise InvalidRequest(
                f"'{key}' exceeds this deployment's limit ({value} > {limit}).",
                param=key,
                code="limit_exceeded",
            )
        _limit(decision, "limits.max_output_tokens", f"{key}:{value}>{limit}", action="clamp")
        body[key] = limit


def scope_label(topic: str | None) -> str:
    """The scope's evidence label: ``nearest:<topic>``, or ``no-topic-near`` when no topic
    shares a content word with the text (what ``gateway policy explain`` says in words)."""
    return f"nearest:{topic}" if topic is not None else "no-topic-near"


def check_scope(policy: CompiledPolicy, refs: list[TextRef], decision: Decision) -> str | None:
    """The refusal text when the request is out of scope and the policy refuses it."""
    scope, classifier = policy.policy.scope, policy.scope
    users = [ref for ref in refs if ref.role == "user"]
    if classifier is None or not users:
        return None
    last = users[-1]
    started = time.perf_counter()
    topic, score = classifier.classify(last.text)
    decision.timings["input:scope.topic"] = (time.perf_counter() - started) * 1000
    if score >= scope.threshold:
        return None
    outcome = Outcome(
        "scope.topic",
        "topic_scope",
        "input",
        scope.out_of_scope,
        [Evidence(last.message, 0, len(last.text), scope_label(topic), score, last.part)],
        why=f"Out of scope for this deployment: {policy.policy.purpose.strip()}",
    )
    outcome.enforced = "block" if scope.out_of_scope == "refuse" else "flag"
    outcome.action = "block" if scope.out_of_scope == "refuse" else "flag"
    decision.add(outcome)
    if scope.out_of_scope != "refuse":
        return None
    if scope.refuse_as == "error":
        raise PolicyViolation("scope.topic", scope.refusal_text, "input")
    return scope.refusal_text


def refusal_text(rule: CompiledRule, policy: CompiledPolicy) -> str | None:
    """What a blocking rule answers in the model's place; None when it blocks with an error."""
    if rule.spec.block_as == "error":
        return None
    return rule.spec.message or policy.policy.scope.refusal_text


def _block(rule: CompiledRule, stage: str, policy: CompiledPolicy) -> str:
    """Raise the rule's error, or return its refusal text."""
    refusal = refusal_text(rule, policy)
    if refusal is None:
        raise PolicyViolation(rule.id, rule.spec.why, stage)
    return refusal


def _enforce(
    fired: list[tuple[CompiledRule, Outcome]], *, block_moots: bool = True
) -> CompiledRule | None:
    """Mark what will be enforced; return the blocking rule, if any."""
    blocking = next((rule for rule, o in fired if rule.spec.action == "block"), None)
    for rule, outcome in fired:
        action = rule.spec.action
        if blocking is not None and block_moots and action in ("redact", "route"):
            continue  # moot: nothing goes through
        outcome.enforced = action
    return blocking


def admit(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> Admission:
    alias = choose_model(policy, body, decision)
    body = {**body, "messages": copy.deepcopy(body.get("messages") or [])}
    refs = message_texts(body["messages"])
    apply_limits(policy, body, refs, decision)
    # Rules run before the scope check, so a refused request still shows every rule it broke.
    fired = run_rules(policy, decision, "input", refs)
    blocking = _enforce(fired)
    if blocking is not None:
        return Admission(body, alias, _block(blocking, "input", policy))
    refusal = check_scope(policy, refs, decision)
    if refusal is not None:
        _moot(fired)
        return Admission(body, alias, refusal)
    _redact_messages(body["messages"], fired)
    route = next((r.spec.route_to for r, _ in fired if r.spec.action == "route"), None)
    if route is not None:
        decision.routed_to = route
        alias = route
    return Admission(body, alias)


def embedding_texts(body: dict[str, Any]) -> list[TextRef] | None:
    """Each embedding input as a text the input rules read (as a user's); None for token
    arrays, which no detector can read."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not all(isinstance(item, str) for item in items):
        return None
    return [TextRef(index, None, "user", text) for index, text in enumerate(items)]


def _limit_embedding_tokens(
    policy: CompiledPolicy, body: dict[str, Any], refs: list[TextRef] | None, decision: Decision
) -> None:
    limit = policy.policy.limits.max_input_tokens
    if limit is None:
        return
    value = body.get("input") or []
    if refs is not None:
        tokens = _estimate_tokens(refs)
    else:  # token arrays: counted exactly
        tokens = sum(len(item) if isinstance(item, list) else 1 for item in value)
    if tokens > limit:
        _limit(decision, "limits.max_input_tokens", f"input:{tokens}>{limit}")
        raise InvalidRequest(
            f"'input' exceeds this deployment's limit ({tokens} > {limit}).",
            param="input",
            code="limit_exceeded",
        )


def _refuse_tokens(policy: CompiledPolicy, decision: Decision) -> None:
    """Token arrays pass only where no input rule would have read the text."""
    readers = [rule.id for rule in policy.rules_for("input") if "user" in rule.spec.roles]
    if not readers:
        return
    outcome = Outcome(
        "input.token_arrays",
        "limit",
        "input",
        "block",
        [Evidence(-1, 0, 0, "input:token_arrays")],
        enforced="block",
        why=f"token arrays cannot be read by the input rules ({', '.join(readers)})",
    )
    decision.add(outcome)
    raise InvalidRequest(
        "This deployment's policy checks the text of every input, and token arrays cannot be "
        "checked: send 'input' as a string or a list of strings.",
        param="input",
        code="unsupported_input",
    )


def admit_embeddings(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> Admission:
    """The input rules on embedding inputs: a block is always the error (there is no answer to
    refuse in), redactions are made before the input goes upstream, flags and warnings hold;
    routes are not followed (their targets are chat models) and the topic scope is chat's."""
    alias = choose_model(policy, body, decision)
    refs = embedding_texts(body)
    _limit_embedding_tokens(policy, body, refs, decision)
    if refs is None:
        _refuse_tokens(policy, decision)
        return Admission(body, alias)
    fired = run_rules(policy, decision, "input", refs)
    blocking = _enforce(fired)
    _moot([(rule, outcome) for rule, outcome in fired if rule.spec.action == "route"])
    if blocking is not None:
        raise PolicyViolation(blocking.id, blocking.spec.why, "input")
    spans = _spans(fired)
    texts = [redact(ref.text, spans.get((ref.message, None), [])) for ref in refs]
    value = texts[0] if isinstance(body["input"], str) else texts
    return Admission({**body, "input": value}, alias)


def _moot(fired: list[tuple[CompiledRule, Outcome]]) -> None:
    """Nothing goes upstream: redactions and routes were not carried out."""
    for rule, outcome in fired:
        if rule.spec.action in ("redact", "route"):
            outcome.enforced = "none"


def _spans(
    fired: list[tuple[CompiledRule, Outcome]],
) -> dict[tuple[int, int | None], list[tuple[int, int, str]]]:
    spans: dict[tuple[int, int | None], list[tuple[int, int, str]]] = {}
    for rule, outcome in fired:
        if rule.spec.action != "redact":
            continue
        for e in outcome.evidence:
            replacement = rule.spec.replacement.format(label=e.label)
            spans.setdefault((e.message, e.part), []).append((e.start, e.end, replacement))
    return spans


def _redact_messages(messages: list[Any], fired: list[tuple[CompiledRule, Outcome]]) -> None:
    for (index, part), spans in _spans(fired).items():
        message = messages[index]
        if part is None:
            message["content"] = redact(message["content"], spans)
        else:
            message["content"][part]["text"] = redact(message["content"][part]["text"], spans)


def first_turn(body: dict[str, Any]) -> bool:
    return not any(
        isinstance(m, dict) and m.get("role") == "assistant" for m in body.get("messages") or ()
    )


def review_answer(
    policy: CompiledPolicy, answer: dict[str, Any], decision: Decision, *, disclose: bool
) -> bool:
    """Hold a whole answer to the output rules, in place. True when it was changed."""
    choices = [c for c in answer.get("choices") or () if isinstance(c, dict)]
    refs = [
        TextRef(i, None, "assistant", c["message"]["content"])
        for i, c in enumerate(choices)
        if isinstance(c.get("message"), dict) and isinstance(c["message"].get("content"), str)
    ]
    fired = run_rules(policy, decision, "output", refs)
    # Choices are held to the rules one by one: a block in one does not moot a redaction in
    # another (n > 1).
    blocking = _enforce(fired, block_moots=False)
    changed = bool(fired and any(r.spec.action in ("block", "redact") for r, _ in fired))
    _apply(policy, choices, fired, blocking)
    if disclose and policy.policy.disclosure is not None and choices:
        _disclose(policy.policy.disclosure.notice.strip(), choices)
        decision.disclosure = changed = True
    return changed


def _apply(
    policy: CompiledPolicy,
    choices: list[dict[str, Any]],
    fired: list[tuple[CompiledRule, Outcome]],
    blocking: CompiledRule | None,
) -> None:
    blocked: set[int] = set()
    if blocking is not None:
        refusal = _block(blocking, "output", policy)
        blocked = {e.message for r, o in fired if r is blocking for e in o.evidence}
        for index in blocked:
            choices[index]["message"].update(content=refusal, refusal=refusal)
            choices[index]["finish_reason"] = "content_filter"
    for (index, _), spans in _spans(fired).items():
        if index not in blocked:
            message = choices[index]["message"]
            message["content"] = redact(message["content"], spans)
    # Token logprobs spell out the original text: none where a block or redaction applied.
    for rule, outcome in fired:
        if rule.spec.action in ("block", "redact"):
            for e in outcome.evidence:
                choices[e.message]["logprobs"] = None


def _disclose(notice: str, choices: list[dict[str, Any]]) -> None:
    for choice in choices:
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = f"{notice}\n\n{message['content']}"
