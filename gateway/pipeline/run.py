"""The non-streaming path, and the frame every model request runs in.

``Pipeline.run`` owns the exchange record until a streaming response takes it over: any
error raised before then is recorded here with the status that says why, then re-raised for
the one error handler to render.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.keys import Principal
from gateway.errors import ClientGone, GatewayError, UpstreamError, UpstreamPassthrough
from gateway.pipeline.request import ChatRequest, EmbeddingsRequest, read_json, validate
from gateway.pipeline.stream import open_stream
from gateway.records.log import ExchangeLog, Status, now
from gateway.services import Services
from gateway.upstream.client import mapped_errors
from gateway.upstream.router import Route

Handler = Callable[[Request, ExchangeLog, Principal, dict[str, Any]], Awaitable[Response]]


def outcome_of(exc: GatewayError) -> Status:
    if isinstance(exc, ClientGone):
        return Status.CLIENT_DISCONNECTED
    if isinstance(exc, UpstreamError | UpstreamPassthrough):
        return Status.UPSTREAM_ERROR
    return Status.GATEWAY_ERROR if exc.status >= 500 else Status.REJECTED


async def unless_client_leaves(
    request: Request, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Run ``work``; if the client disconnects first, cancel it (closing any upstream call).

    Only once the body has been read: from then on ``receive`` says nothing but disconnect.
    """
    gone = False
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal gone
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                gone = True
                group.cancel_scope.cancel()

            group.start_soon(watch)
            response = await work()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as failed:
        # The watcher never raises, so the group holds just the work's own exception.
        raise failed.exceptions[0] from None
    if gone:
        raise ClientGone("The client disconnected before its answer was ready.")
    return response


class Pipeline:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def chat(self, request: Request) -> Response:
        return await self._run(request, "chat.completions", self._chat)

    async def embeddings(self, request: Request) -> Response:
        return await self._run(request, "embeddings", self._embeddings)

    async def _run(self, request: Request, endpoint: str, handler: Handler) -> Response:
        log = ExchangeLog(id=request.state.request_id, endpoint=endpoint)
        try:
            principal = await self.s.authenticator.authenticate(
                request.headers.get("authorization")
            )
            log.key_id, log.context = principal.key_id, principal.context
            body = await read_json(request)
            log.request_body = body
            return await unless_client_leaves(
                request, lambda: handler(request, log, principal, body)
            )
        except GatewayError as exc:
            log.fail(outcome_of(exc), exc.status, exc.code or exc.type, exc.message)
            log.response_body = exc.body()
            self.s.recorder.submit(log)
            raise
        except asyncio.CancelledError:
            log.fail(Status.CLIENT_DISCONNECTED, 499, "client_disconnected", "cancelled")
            self.s.recorder.submit(log)
            raise
        except Exception as exc:
            log.fail(Status.GATEWAY_ERROR, 500, type(exc).__name__, str(exc)[:2000])
            self.s.recorder.submit(log)
            raise

    def _route(self, log: ExchangeLog, alias: str) -> Route:
        log.requested_model = alias
        route = self.s.router.resolve(alias)
        log.backend, log.upstream_model = route.backend_name, route.upstream_model
        return route

    async def _chat(
        self, request: Request, log: ExchangeLog, principal: Principal, body: dict[str, Any]
    ) -> Response:
        chat = validate(ChatRequest, body)
        log.stream = bool(chat.stream)
        route = self._route(log, chat.model)
        if chat.stream:
            return await open_stream(self.s, route, log, body, inject_usage=not chat.wants_usage)
        raw, answer = await self._forward(route, "/chat/completions", log, body)
        log.response_body = answer
        return self._answer(log, raw, answer)

    async def _embeddings(
        self, request: Request, log: ExchangeLog, principal: Principal, body: dict[str, Any]
    ) -> Response:
        embeddings = validate(EmbeddingsRequest, body)
        route = self._route(log, embeddings.model)
        raw, answer = await self._forward(route, "/embeddings", log, body)
        log.response_body = _without_vectors(answer)
        return self._answer(log, raw, answer)

    async def _forward(
        self, route: Route, path: str, log: ExchangeLog, body: dict[str, Any]
    ) -> tuple[bytes, dict[str, Any]]:
        """Send a non-streaming request upstream; return its body, raw and parsed."""
        payload = json.dumps({**body, "model": route.upstream_model}).encode()
        log.upstream_started_at = now()
        response = await self.s.upstream.open(route, path, payload, log.id, stream=False)
        log.first_byte_at = now()
        try:
            with mapped_errors(route):
                raw = await response.aread()
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        raw = self.s.upstream.scrub(raw)
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(
                f"Backend '{route.backend_name}' sent a body that is not JSON.",
                code="upstream_malformed_response",
            ) from exc
        if not isinstance(answer, dict):
            raise UpstreamError(f"Backend '{route.backend_name}' sent a non-object answer.")
        return raw, answer

    def _answer(self, log: ExchangeLog, raw: bytes, answer: dict[str, Any]) -> Response:
        log.response_model = answer.get("model")
        log.take_usage(answer.get("usage"))
        log.ended_at = now()
        self.s.recorder.submit(log)
        return Response(raw, media_type="application/json")


def _without_vectors(answer: dict[str, Any]) -> dict[str, Any]:
    """Embedding vectors are large and say nothing an auditor reads; keep their shape only."""
    data = []
    for item in answer.get("data") or ():
        if isinstance(item, dict):
            vector = item.get("embedding")
            size = len(vector) if isinstance(vector, list | str) else None
            data.append(
                {**{k: v for k, v in item.items() if k != "embedding"}, "embedding_omitted": size}
            )
    return {**answer, "data": data}
