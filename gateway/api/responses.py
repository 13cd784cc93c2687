"""The Responses API: ``POST /v1/responses`` through the pipeline, and the stored responses'
reads (``GET``, ``DELETE``, ``GET …/input_items``), each with the caller's key and only within
its context: another context's response is a 404, as a missing one is. A response sent with
``store: false``, or deleted, is not served (its record stays: the exchange is accountable).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from gateway.audit.events import key_actor
from gateway.auth.keys import Principal
from gateway.deps import ServicesDep, app_state
from gateway.errors import NotFound, PolicyUnavailable
from gateway.pipeline.responses.handler import Responses
from gateway.pipeline.responses.stored import input_items, read_answer
from gateway.policy.compiled import CompiledPolicy
from gateway.records.responses import ResponseLookup, ResponseRecords, StoredResponse
from gateway.services import Services

router = APIRouter(prefix="/v1", tags=["openai"])


def _lookup(services: Services) -> ResponseLookup:
    records = ResponseRecords(services.sessions, services.audit)
    return ResponseLookup(services.recent_responses, records)


@router.post("/responses", summary="Create a model response (streaming or not)")
async def create_response(request: Request) -> Response:
    state = app_state(request)
    handler = Responses(state.pipeline.s, _lookup(state.services))
    return await state.pipeline.run(request, "responses", handler)


@router.get("/responses/{response_id}", summary="A stored response of this key's context")
async def get_response(
    response_id: str, services: ServicesDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    stored, policy = await _found(services, authorization, response_id)
    return await read_answer(stored, policy, services.detectors, services.recent_responses)


@router.delete("/responses/{response_id}", summary="Delete a stored response")
async def delete_response(
    response_id: str, services: ServicesDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    principal, _ = await _caller(services, authorization)
    actor = key_actor(principal.key_id)
    if not await _lookup(services).delete(principal.context, response_id, actor):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.get("/responses/{response_id}/input_items", summary="The items a response was made from")
async def list_input_items(
    response_id: str,
    services: ServicesDep,
    authorization: str | None = Header(None),
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    stored, _ = await _found(services, authorization, response_id)
    items = input_items(stored)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


async def _caller(
    services: Services, authorization: str | None
) -> tuple[Principal, CompiledPolicy]:
    principal = await services.authenticator.authenticate(authorization)
    policy = services.policies.get(principal.context)
    if policy is None:
        raise PolicyUnavailable(
            f"The deployment context '{principal.context}' has no policy that can serve."
        )
    return principal, policy


async def _found(
    services: Services, authorization: str | None, response_id: str
) -> tuple[StoredResponse, CompiledPolicy]:
    principal, policy = await _caller(services, authorization)
    stored = await _lookup(services).find(principal.context, response_id)
    if stored is None or not stored.servable:
        raise _not_found(response_id)
    if stored.content == "none":
        raise NotFound(
            f"The response '{response_id}' is not kept: this context's policy records no "
            "content (record.content: none).",
            param="response_id",
            code="response_not_kept",
        )
    return stored, policy


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"No response found with id '{response_id}'.", param="response_id")
