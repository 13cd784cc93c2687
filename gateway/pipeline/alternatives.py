"""A second answer for a review item, asked through the request path like any exchange.

The reviewers' page asks for it (``gateway.review.alternatives`` decides when); this makes the
call: the policy's input rules admit the request (redacted, or not at all when refused), the
answer is held to the output rules, and the exchange is recorded like any other, marked as made
for review (``decision.made_for``) and under no key (no caller asked for it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from functools import partial
from typing import Any

from gateway.auth.keys import Principal
from gateway.errors import GatewayError
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.stages.forward import forward
from gateway.pipeline.stages.inputs import admit
from gateway.pipeline.stages.record import failed, finish
from gateway.pipeline.stages.route import route
from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.records.status import Status

REVIEW_PRINCIPAL = "review"

log = logging.getLogger("gateway.review")


async def ask_alternative(
    needs: PipelineNeeds,
    policy: CompiledPolicy,
    alias: str,
    request: dict[str, Any],
    item_id: str,
) -> str | None:
    """The alternative's text, or None when the policy refused it or the backend failed."""
    record = ExchangeRecord(id="req_" + secrets.token_hex(16), endpoint="chat.completions")
    record.made_for = f"review item {item_id}"
    ctx = RequestContext.of(Principal("", policy.context, REVIEW_PRINCIPAL), policy)
    record.ctx = ctx
    body = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
    body["model"] = alias
    record.request_body = body
    needs.recorder.begin(record.id)  # shutdown waits for its record
    try:
        return await _ask(needs, record, ctx, body)
    except GatewayError as exc:
        failed(record, exc)
        log.warning("no alternative from %s for %s: %s", alias, item_id, exc.message)
        return None
    except asyncio.CancelledError:  # the reviewer's page request went away, or a shutdown
        record.fail(Status.INCOMPLETE, 499, "cancelled", "the alternative was cancelled")
        raise
    except Exception as exc:  # a backend's odd answer or a bug: no alternative, on record
        record.fail(Status.GATEWAY_ERROR, 500, type(exc).__name__, str(exc)[:2000])
        log.exception("no alternative from %s for %s", alias, item_id)
        return None
    finally:
        finish(needs.recorder, record)


async def _ask(
    needs: PipelineNeeds, record: ExchangeRecord, ctx: RequestContext, body: dict[str, Any]
) -> str | None:
    policy, decision = ctx.policy, ctx.decision
    admitted = await needs.detectors.evaluate(
        policy.heavy_at(Stage.INPUT), partial(admit, policy, body, decision)
    )
    allowed = policy.policy.models.allow
    upstream_route = route(needs.router, record, admitted.alias, allowed)
    if admitted.refusal is not None:
        record.end(Status.BLOCKED, "policy_refusal", "the input rules refused the alternative")
        return None
    raw, answer = await forward(
        needs.upstream, upstream_route, "/chat/completions", record, admitted.body
    )
    record.response_body = answer
    record.response_model = answer.get("model")
    record.take_usage(answer.get("usage"))
    reviewed = json.loads(raw)
    output = OutputStage(policy, decision, disclose=False)
    await needs.detectors.evaluate(policy.heavy_at(Stage.OUTPUT), partial(output.answer, reviewed))
    try:
        content = reviewed["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        record.end(Status.UPSTREAM_ERROR, "upstream_malformed_response", "no message content")
        return None
    return content if isinstance(content, str) else None
