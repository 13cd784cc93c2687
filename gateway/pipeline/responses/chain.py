"""``previous_response_id``: the earlier response, found only among the caller's context's
records (another context's id is not found, as a missing one is), and the conversation up to
it, rebuilt from the gateway's own records when the backend cannot resolve the id itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.detectors.pool import DetectorPool
from gateway.errors import InvalidRequest
from gateway.pipeline.responses.stored import previous_of, read_answer, turn_items
from gateway.policy.compiled import CompiledPolicy
from gateway.records.responses import ResponseLookup, StoredResponse
from gateway.upstream.router import Route

#: how many earlier responses a conversation is rebuilt from, at most
MAX_LINKS = 64
PARAM = "previous_response_id"


@dataclass(slots=True)
class Chain:
    previous: StoredResponse
    #: the earlier turns as Responses items, oldest first (None: they cannot be rebuilt)
    items: list[Any] | None = None
    #: why they cannot be rebuilt
    why_not: str = ""
    #: some of them are a redacted record's text
    redacted: bool = False
    links: list[str] = field(default_factory=list)

    def passes_through(self, route: Route) -> bool:
        """The route's backend answered the earlier response itself: it resolves the id."""
        return (
            route.backend.responses == "native"
            and self.previous.native
            and self.previous.backend == route.backend_name
        )

    def rebuilt(self) -> list[Any]:
        if self.items is None:
            raise InvalidRequest(self.why_not, param=PARAM, code="previous_response_unusable")
        return self.items


async def resolve(
    lookup: ResponseLookup,
    context: str,
    response_id: str,
    policy: CompiledPolicy,
    detectors: DetectorPool,
) -> Chain:
    previous = await lookup.find(context, response_id)
    if previous is None or not previous.servable:
        raise InvalidRequest(
            f"Previous response with id '{response_id}' not found.",
            param=PARAM,
            code="previous_response_not_found",
        )
    chain = Chain(previous)
    turns: list[list[Any]] = []
    link: StoredResponse | None = previous
    while link is not None and len(turns) < MAX_LINKS:
        if link.content == "none":
            chain.why_not = (
                f"The conversation up to '{response_id}' cannot be rebuilt: this context's "
                "policy records no content (record.content: none), and the model's backend "
                "does not store responses itself."
            )
            return chain
        chain.redacted |= link.content == "redacted"
        chain.links.append(link.response_id)
        answer = await read_answer(link, policy, detectors, lookup.recent, turn=True)
        turns.append(turn_items(link, answer))
        earlier = previous_of(link)
        known = earlier is None or earlier in chain.links
        found = None if known else await lookup.find(context, str(earlier))
        link = found if found is not None and found.servable else None  # deleted: not served
    chain.items = [item for turn in reversed(turns) for item in turn]
    return chain
