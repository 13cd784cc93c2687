"""The quota stage: a request is admitted against its context's rate limits and budgets
(``limits.rate`` in the policy) and its key's own, both at once, with an estimate of its tokens;
as the exchange ends (``ExchangeRecord.on_finish``, streams included) it is settled with the
usage the backend reported, priced from the config's table, and its stream's slot freed.

A refusal is a 429 (``rate_limit_exceeded`` while a window is full, ``budget_exceeded`` once a
budget is spent), recorded as a ``limit`` outcome on the decision, which names the limit.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.policy.actions import Action, Enforced, Stage
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.engine import message_texts
from gateway.policy.limits import estimate_tokens
from gateway.quota.checks import Scope
from gateway.quota.limiter import Limiter, Refusal, Ticket


async def take_quota(
    limiter: Limiter,
    record: ExchangeRecord,
    ctx: RequestContext,
    alias: str,
    body: dict[str, Any],
    *,
    stream: bool,
) -> dict[str, str]:
    """Admit the request (or raise its 429); the ``x-ratelimit-*`` headers for its answer."""
    scopes = scopes_of(ctx)
    if not scopes and not limiter.pricing.models:  # nothing to count, nothing to price
        return {}
    estimate = estimate_of(body)
    admitted = (
        await limiter.admit(scopes, estimate, stream=stream, member=record.id) if scopes else None
    )
    if isinstance(admitted, Refusal):
        _refused(ctx.decision, admitted)
        raise admitted.error
    if admitted is not None and admitted.fallback is not None:
        _counted_locally(ctx.decision, admitted.fallback)
    record.on_finish.append(partial(settle, limiter, admitted, alias, estimate))
    return admitted.headers if admitted is not None else {}


def scopes_of(ctx: RequestContext) -> list[Scope]:
    scopes = []
    context_limits = ctx.policy.policy.limits.rate
    if not context_limits.empty:
        scopes.append(Scope("context", ctx.principal.context, context_limits))
    key_limits = ctx.principal.limits
    if ctx.principal.key_id and key_limits is not None and not key_limits.empty:
        scopes.append(Scope("key", ctx.principal.key_id, key_limits))
    return scopes


def estimate_of(body: dict[str, Any]) -> int:
    """The tokens a request may use, before it is sent: its text's estimate and, for chat,
    what it may be answered with (``max_tokens`` times ``n``)."""
    if "messages" in body:
        messages = body.get("messages")
        refs = message_texts(messages if isinstance(messages, list) else [])
        most = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        n = body.get("n") or 1
        answer = most * n if isinstance(most, int) and isinstance(n, int) else 0
        return estimate_tokens(refs) + answer
    value = body.get("input")
    items = value if isinstance(value, list) else [value]
    total = 0
    for item in items:
        if isinstance(item, str):
            total += (len(item) + 3) // 4
        elif isinstance(item, list):  # a token array, or a single one
            total += len(item)
        elif isinstance(item, int):
            total += 1
    return total


def settle(
    limiter: Limiter, ticket: Ticket | None, alias: str, estimate: int, record: ExchangeRecord
) -> None:
    """What the exchange used, from the backend's usage: its cost on the record, its tokens
    charged (the estimate stays charged when a backend answered and reported no usage; nothing
    is charged when no backend answered)."""
    prompt, completion = record.prompt_tokens, record.completion_tokens
    cost: float | None = None
    if prompt is None and completion is None:
        tokens = estimate if record.first_byte_at is not None else 0
    else:
        tokens = record.total_tokens or (prompt or 0) + (completion or 0)
        served = record.served_alias or alias
        priced = limiter.price(served, prompt or 0, completion or 0)
        if priced is not None:
            cost = priced[0]
            record.cost, record.currency = priced
    if ticket is not None:
        limiter.settle(ticket, tokens, cost)


def _refused(decision: Decision, refusal: Refusal) -> None:
    check = refusal.check
    rule = f"limits.rate.{check.limit}" if check.scope == "context" else f"key.{check.limit}"
    whose = "the context's" if check.scope == "context" else "the API key's"
    decision.add(
        Outcome(
            rule,
            "limit",
            Stage.INPUT,
            Action.BLOCK,
            [Evidence(-1, 0, 0, f"{check.limit}:{refusal.used}/{check.maximum}")],
            enforced=Action.BLOCK,
            why=f"{whose} {check.limit} limit",
        )
    )


def _counted_locally(decision: Decision, why: str) -> None:
    """Said on the decision (and so on the record and in findings); not a rule that fired."""
    decision.outcomes.append(
        Outcome(
            "limits.store",
            "limit",
            Stage.INPUT,
            Action.WARN,
            [],
            enforced=Enforced.NONE,
            why="the rate-limit store (Redis) could not be reached",
            note=why,
        )
    )
