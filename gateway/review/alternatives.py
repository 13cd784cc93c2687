"""A second answer for reviewers to compare: the same request, sent to another allowed model.

Made once, when an item is first claimed, and kept on the item, so every reviewer of the item
sees the same alternative. A backend that fails is skipped; with no other model (or none
answering) the item simply has no alternative, and reviewers write or keep the answer.

The request is the one on the record: in a context that records content redacted, its personal
data and secrets stand as their labels (as the model saw them where a rule redacted them) and
everything else as the user wrote it, so the alternative answers the real question
(``gateway/records/views.py``).

An embeddings request has no answer to compare one with: none is asked for, and the item
says so (``alternative_note`` in ``gateway/review/views.py``).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import anyio
from sqlalchemy import update

from gateway.clock import now
from gateway.db.models import Exchange, ReviewItem
from gateway.errors import GatewayError
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.enforce import admit, review_answer
from gateway.review.views import EMBEDDINGS
from gateway.services import Services
from gateway.upstream.client import mapped_errors

log = logging.getLogger("gateway.review")


async def ensure_alternative(services: Services, item: ReviewItem) -> ReviewItem:
    if item.alternative is not None:
        return item
    async with services.sessions() as session:
        exchange = await session.get(Exchange, item.exchange_id)
    policy = services.policies.get(item.context)
    request = exchange.request_body if exchange is not None else None
    if policy is None or exchange is None or not isinstance(request, dict):
        return item
    if exchange.endpoint == EMBEDDINGS:
        return item  # no answer to compare with: the item's alternative_note says so
    for alias in policy.policy.models.allow:
        if alias == exchange.requested_model or alias not in services.router.aliases:
            continue
        content = await _ask(services, policy, alias, request, item.id)
        if content is not None:
            alternative = {"model": alias, "content": content, "generated_at": now().isoformat()}
            async with services.sessions.begin() as session:
                await session.execute(
                    update(ReviewItem)
                    .where(ReviewItem.id == item.id)
                    .values(alternative=alternative)
                )
            item.alternative = alternative
            return item
    return item


async def _ask(
    services: Services, policy: CompiledPolicy, alias: str, request: dict[str, Any], item_id: str
) -> str | None:
    """The policy applies to the alternative as to any exchange: the request goes as admitted
    (redacted, or not at all when it was refused), the answer comes back reviewed."""
    decision = Decision(policy.revision, policy.context)
    try:
        pool = services.detectors
        asked = {**request, "model": alias}
        admitted = await pool.evaluate(
            policy.heavy_at("input"), partial(admit, policy, asked, decision)
        )
        if admitted.refusal is not None:
            return None
        route = services.router.resolve(alias)
        body = {**admitted.body, "model": route.upstream_model, "stream": False}
        body.pop("stream_options", None)
        response = await services.upstream.open(
            route, "/chat/completions", json.dumps(body).encode(), item_id, stream=False
        )
        try:
            with mapped_errors(route):
                answer = json.loads(services.upstream.scrub(await response.aread()))
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        await pool.evaluate(
            policy.heavy_at("output"),
            partial(review_answer, policy, answer, decision, disclose=False),
        )
        content = answer["choices"][0]["message"]["content"]
    except (GatewayError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("no alternative from %s for %s: %s", alias, item_id, exc)
        return None
    return content if isinstance(content, str) else None
