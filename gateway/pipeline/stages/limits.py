"""The limits stage: the model a request may use and the sizes its context allows.

A limit that refuses (judged by ``gateway.policy.limits``) is answered with a 4xx; a limit that
clamps (``limits.on_max_tokens: clamp``) edits the body that goes upstream and says so.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, NotFound
from gateway.policy.actions import Action
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.engine import TextRef
from gateway.policy.limits import check_sizes, estimate_tokens, exceeds, limit_outcome


def choose_model(policy: CompiledPolicy, body: dict[str, Any], decision: Decision) -> str:
    alias = body.get("model") or policy.policy.models.default
    allowed = policy.policy.models.allow
    if not isinstance(alias, str):
        raise InvalidRequest("Invalid value for 'model': a model alias is required.", param="model")
    if alias not in allowed:
        limit_outcome(decision, "scope.models", f"model:{alias}")
        raise NotFound(
            f"The model '{alias}' does not exist or you do not have access to it. "
            f"Models available: {', '.join(allowed)}.",
            code="model_not_found",
            param="model",
        )
    return alias


def apply_limits(
    policy: CompiledPolicy, body: dict[str, Any], refs: list[TextRef], decision: Decision
) -> dict[str, Any]:
    """The chat body with its output limit applied (a new dict where it changes)."""
    n = body.get("n")
    messages = len(body.get("messages") or ())
    check_sizes(policy, messages, n if isinstance(n, int) else 1, refs, decision)
    return _limit_output(policy, body, decision)


def _limit_output(
    policy: CompiledPolicy, body: dict[str, Any], decision: Decision
) -> dict[str, Any]:
    limit = policy.policy.limits.max_output_tokens
    if limit is None:
        return body
    asked = [
        (k, body[k])
        for k in ("max_tokens", "max_completion_tokens")
        if isinstance(body.get(k), int)
    ]
    if not asked:
        return {**body, "max_tokens": limit}
    clamped = {}
    for key, value in asked:
        if value <= limit:
            continue
        if policy.policy.limits.on_max_tokens == "reject":
            raise exceeds(decision, "limits.max_output_tokens", key, value, limit)
        limit_outcome(decision, "limits.max_output_tokens", f"{key}:{value}>{limit}", Action.CLAMP)
        clamped[key] = limit
    return {**body, **clamped} if clamped else body


def limit_embedding_tokens(
    policy: CompiledPolicy, body: dict[str, Any], refs: list[TextRef] | None, decision: Decision
) -> None:
    limit = policy.policy.limits.max_input_tokens
    if limit is None:
        return
    value = body.get("input") or []
    if refs is not None:
        tokens = estimate_tokens(refs)
    else:  # token arrays: counted exactly
        tokens = sum(len(item) if isinstance(item, list) else 1 for item in value)
    if tokens > limit:
        raise exceeds(decision, "limits.max_input_tokens", "input", tokens, limit)
