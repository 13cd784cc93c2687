"""The OpenAI-compatible surface: chat completions, embeddings, models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from gateway.deps import PipelineDep, ServicesDep
from gateway.services import Services

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/chat/completions", summary="Create a chat completion (streaming or not)")
async def chat_completions(request: Request, pipeline: PipelineDep) -> Response:
    return await pipeline.chat(request)


@router.post("/embeddings", summary="Create embeddings")
async def embeddings(request: Request, pipeline: PipelineDep) -> Response:
    return await pipeline.embeddings(request)


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
    await services.authenticator.authenticate(authorization)
    return {
        "object": "list",
        "data": [_model(services, alias) for alias in services.router.aliases],
    }


@router.get("/models/{model_id:path}", summary="One model this key may call")
async def get_model(
    model_id: str, services: ServicesDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    await services.authenticator.authenticate(authorization)
    return _model(services, model_id)
