"""The OpenAI-compatible surface: chat completions, legacy completions, embeddings, models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from gateway.deps import ServicesDep, app_state
from gateway.errors import NotFound, PolicyUnavailable
from gateway.pipeline.completions import Completions
from gateway.services import Services

router = APIRouter(prefix="/v1", tags=["openai"])


# The model calls read the pipeline from the lifespan's state themselves: the request path
# skips FastAPI's dependency solving (the body is the pipeline's to read and validate).


@router.post("/chat/completions", summary="Create a chat completion (streaming or not)")
async def chat_completions(request: Request) -> Response:
    return await app_state(request).pipeline.chat(request)


@router.post("/completions", summary="Create a legacy text completion (streaming or not)")
async def completions(request: Request) -> Response:
    pipeline = app_state(request).pipeline
    return await pipeline.run(request, "completions", Completions(pipeline.s))


@router.post("/embeddings", summary="Create embeddings")
async def embeddings(request: Request) -> Response:
    return await app_state(request).pipeline.embeddings(request)


def _model(services: Services, alias: str) -> dict[str, Any]:
    route = services.router.resolve(alias)
    return {
        "id": alias,
        "object": "model",
        "created": services.started_at,
        "owned_by": route.backend_name,
    }


@router.get("/models", summary="The models this key may call")
async def list_models(
    services: ServicesDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    allowed = await _allowed(services, authorization)
    return {"object": "list", "data": [_model(services, alias) for alias in allowed]}


@router.get("/models/{model_id:path}", summary="One model this key may call")
async def get_model(
    model_id: str, services: ServicesDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    allowed = await _allowed(services, authorization)
    if model_id not in allowed:
        raise NotFound(
            f"The model '{model_id}' does not exist or you do not have access to it. "
            f"Models available: {', '.join(allowed)}.",
            code="model_not_found",
            param="model",
        )
    return _model(services, model_id)


async def _allowed(services: Services, authorization: str | None) -> list[str]:
    """The aliases the caller's context may use, as its policy says."""
    principal = await services.authenticator.authenticate(authorization)
    policy = services.policies.get(principal.context)
    if policy is None:
        raise PolicyUnavailable(
            f"The deployment context '{principal.context}' has no policy that can serve."
        )
    return [a for a in policy.policy.models.allow if a in services.router.aliases]
