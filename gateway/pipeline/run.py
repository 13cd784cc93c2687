"""The non-streaming path, and the frame every model request runs in.

``Pipeline.run`` owns the exchange record until a streaming response takes it over: any
error raised before then is recorded here with the status that says why, then re-raised for
the one error handler to render.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from gateway.clock import now
from gateway.errors import (
    ClientGone,
    GatewayError,
    PolicyUnavailable,
    PolicyViolation,
    UpstreamError,
    UpstreamPassthrough,
)
from gateway.pipeline.answers import decision_headers, refusal_response, upstream_filtered
from gateway.pipeline.output import OutputStage
from gateway.pipeline.request import ChatRequest, EmbeddingsRequest, read_json, validate
from gateway.pipeline.stream import open_stream
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.enforce import (
    Admission,
    admit,
    admit_embeddings,
    first_turn,
    review_answer,
)
from gateway.records.log import ExchangeLog, Status
from gateway.services import Services
from gateway.upstream.client import mapped_errors
from gateway.upstream.router import Route

Handler = Callable[[ExchangeLog, CompiledPolicy, dict[str, Any]], Awaitable[Response]]


def outcome_of(exc: GatewayError) -> Status:
    if isinstance(exc, ClientGone):
        return Status.CLIENT_DISCONNECTED
    if isinstance(exc, UpstreamError | UpstreamPassthrough):
        return Status.UPSTREAM_ERROR
    if isinstance(exc, PolicyViolation):
        return Status.BLOCKED
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
            policy = self._policy(principal.context)
            log.decision = Decision(policy.revision, policy.context)
            log.policy = policy
            log.content = policy.policy.record.content
            body = await read_json(request)
            log.request_body = body
            return await unless_client_leaves(request, lambda: handler(log, policy, body))
        except GatewayError as exc:
            log.fail(outcome_of(exc), exc.status, exc.code or exc.type, exc.message)
            if log.response_body is None:
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

    def _policy(self, context: str) -> CompiledPolicy:
        policy = self.s.policies.get(context)
        if policy is None:
            raise PolicyUnavailable(
                f"The deployment context '{context}' has no policy that can serve; "
                "the operator must fix its policy file.",
                headers={"retry-after": "5"},
            )
        return policy

    def _route(self, log: ExchangeLog, alias: str) -> Route:
        log.requested_model = log.requested_model or alias
        route = self.s.router.resolve(alias)
        log.backend, log.upstream_model = route.backend_name, route.upstream_model
        return route

    async def _chat(
        self, log: ExchangeLog, policy: CompiledPolicy, body: dict[str, Any]
    ) -> Response:
        chat = validate(ChatRequest, body)
        decision = log.decision
        assert decision is not None
        log.stream = bool(chat.stream)
        log.requested_model = chat.model
        pool = self.s.detectors
        admitted = await pool.evaluate(
            policy.heavy_at("input"), partial(admit, policy, body, decision)
        )
        route = self._route(log, admitted.alias)
        if admitted.refusal is not None:
            return self._refuse(log, admitted, chat)
        disclose = first_turn(body)
        if chat.stream:
            output = OutputStage(policy, decision, disclose=disclose)
            decision.disclosure = disclose and policy.policy.disclosure is not None
            return await open_stream(
                self.s,
                route,
                log,
                admitted.body,
                inject_usage=not chat.wants_usage,
                output=output,
                headers=decision_headers(decision),
                heavy=policy.heavy_at("output"),
            )
        raw, answer = await self._forward(route, "/chat/completions", log, admitted.body)
        # The record keeps the backend's answer as given; the decision says what was changed.
        changes = policy.rules_for("output") or (disclose and policy.policy.disclosure)
        log.response_body = copy.deepcopy(answer) if changes else answer
        filtered = upstream_filtered(answer.get("choices"))  # before the gateway's own blocks
        reviewed = partial(review_answer, policy, answer, decision, disclose=disclose)
        if await pool.evaluate(policy.heavy_at("output"), reviewed):
            raw = json.dumps(answer).encode()
        _settle(log, decision, filtered)
        return self._answer(log, raw, answer)

    def _refuse(self, log: ExchangeLog, admitted: Admission, chat: ChatRequest) -> Response:
        assert log.decision is not None
        response, completion = refusal_response(
            admitted.alias,
            admitted.refusal or "",
            chat.n or 1,
            stream=bool(chat.stream),
            include_usage=chat.wants_usage,
            decision=log.decision,
        )
        log.status, log.error_type = Status.BLOCKED, "policy_refusal"
        log.response_body = completion
        log.ended_at = now()
        self.s.recorder.submit(log)
        return response

    async def _embeddings(
        self, log: ExchangeLog, policy: CompiledPolicy, body: dict[str, Any]
    ) -> Response:
        validate(EmbeddingsRequest, body)
        assert log.decision is not None
        admitted = await self.s.detectors.evaluate(
            policy.heavy_at("input"), partial(admit_embeddings, policy, body, log.decision)
        )
        route = self._route(log, admitted.alias)
        raw, answer = await self._forward(route, "/embeddings", log, admitted.body)
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
        return Response(raw, media_type="application/json", headers=decision_headers(log.decision))


def _settle(log: ExchangeLog, decision: Decision, filtered: str | None) -> None:
    """Whose doing an answer's ``content_filter`` was: the policy's, or the backend's own."""
    blocked = [o.rule for o in decision.outcomes if o.stage == "output" and o.enforced == "block"]
    if blocked:
        log.status, log.error_type = Status.BLOCKED, "policy_violation"
        log.error_message = f"output blocked by rule '{blocked[0]}'"
    elif filtered is not None:
        log.status, log.error_type = Status.UPSTREAM_FILTERED, "upstream_content_filter"
        log.error_message = filtered


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
