"""A second answer for reviewers to compare: the same request, sent to another allowed model.

Made once, when an item is first claimed, and kept on the item, so every reviewer of the item
sees the same alternative. A backend that fails is skipped; with no other model (or none
answering) the item simply has no alternative, and reviewers write or keep the answer.

The request is the one on the record: in a context that records content redacted, its personal
data and secrets stand as their labels (as the model saw them where a rule redacted them) and
everything else as the user wrote it, so the alternative answers the real question
(``gateway/records/views.py``).

The call itself goes through the request path (``gateway.pipeline.alternatives``, reached
through ``ask_alternative``), so it is admitted, checked and recorded like any exchange,
marked as made for review.

An embeddings request has no answer to compare one with: none is asked for, and the item
says so (``alternative_note`` in ``gateway/review/views.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import update

from gateway.clock import now
from gateway.db.models import Exchange, ReviewItem
from gateway.db.session import Sessions
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.store import PolicyStore
from gateway.review.views import EMBEDDINGS, chat_bodies
from gateway.upstream.router import ModelRouter


class AlternativeSource(Protocol):
    @property
    def sessions(self) -> Sessions: ...

    @property
    def policies(self) -> PolicyStore: ...

    @property
    def router(self) -> ModelRouter: ...

    async def ask_alternative(
        self, policy: CompiledPolicy, alias: str, request: dict[str, Any], item_id: str
    ) -> str | None:
        """The alternative's text (None if refused or failed), asked through the pipeline."""


async def ensure_alternative(services: AlternativeSource, item: ReviewItem) -> ReviewItem:
    if item.alternative is not None:
        return item
    async with services.sessions() as session:
        exchange = await session.get(Exchange, item.exchange_id)
    policy = services.policies.get(item.context)
    # asked as a chat completion, whatever the endpoint: the record's chat view
    request = chat_bodies(exchange)[0] if exchange is not None else None
    if policy is None or exchange is None or not isinstance(request, dict):
        return item
    if exchange.endpoint == EMBEDDINGS:
        return item  # no answer to compare with: the item's alternative_note says so
    for alias in policy.policy.models.allow:
        if alias == exchange.requested_model or alias not in services.router.aliases:
            continue
        content = await services.ask_alternative(policy, alias, request, item.id)
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
