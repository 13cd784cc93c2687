"""The request path, composed in one place from its stages (``pipeline/stages/``):

    authenticate → snapshot the policy → limits → input checks → route → quota → forward
    → output checks → respond → record → route to review

``Pipeline._run`` owns the exchange record until a streaming response takes it over: any
error raised before then is recorded with the status that says why, then re-raised for the
one error handler to render.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import ClientGone, GatewayError
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.request import ChatRequest, EmbeddingsRequest, read_json, validate
from gateway.pipeline.stages.authenticate import authenticate, snapshot
from gateway.pipeline.stages.forward import forward
from gateway.pipeline.stages.inputs import Admission, admit, admit_embeddings, first_turn
from gateway.pipeline.stages.quota import take_quota
from gateway.pipeline.stages.record import failed, finish
from gateway.pipeline.stages.respond import (
    answered,
    decision_headers,
    refusal_response,
    refused,
    settle,
    unrecordable,
    upstream_filtered,
)
from gateway.pipeline.stages.route import route
from gateway.pipeline.stream import Ending, Frames, ProxyStream
from gateway.pipeline.stream_chat import ChatFrames
from gateway.pipeline.stream_open import FramesFactory, open_stream
from gateway.pipeline.tools_chat import scope_calls
from gateway.pipeline.tools_stream import ToolStream
from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.records.status import Status
from gateway.upstream.router import Route

Handler = Callable[[ExchangeRecord, RequestContext, dict[str, Any]], Awaitable[Response]]


async def unless_client_leaves(
    request: Request, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Run ``work``; if the client disconnects first, cancel it (closing any upstream call).

    Only once the body has been read: from then on ``receive`` says nothing but disconnect.
    One watcher task, no task group: the request's own task is cancelled when the client goes
    (a policy check already running on a thread is still waited for: ``DetectorPool.run``).
    """
    task = asyncio.current_task()
    assert task is not None
    left = False

    async def watch() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        response = await work()
    except asyncio.CancelledError:
        if not left:
            raise
        task.uncancel()
        raise ClientGone("The client disconnected before its answer was ready.") from None
    finally:
        watcher.cancel()
    if left:
        task.uncancel()
        if isinstance(response, ProxyStream):  # opened as the client left: close it unsent
            await response.discard()
        raise ClientGone("The client disconnected before its answer was ready.")
    return response


class Pipeline:
    def __init__(self, services: PipelineNeeds) -> None:
        self.s = services

    async def chat(self, request: Request) -> Response:
        return await self._run(request, "chat.completions", self._chat)

    async def embeddings(self, request: Request) -> Response:
        return await self._run(request, "embeddings", self._embeddings)

    async def run(self, request: Request, endpoint: str, handler: Handler) -> Response:
        """Another endpoint through the same path (the Responses API, legacy completions):
        authenticated, its policy snapshotted, its body read, recorded whatever happens;
        ``handler`` does the rest with the record, the context and the body."""
        return await self._run(request, endpoint, handler)

    async def _run(self, request: Request, endpoint: str, handler: Handler) -> Response:
        record = ExchangeRecord(id=request.state.request_id, endpoint=endpoint)
        request.state.exchange = record  # the access log reads its decision (telemetry.access)
        recorder = self.s.recorder
        recorder.begin(record.id)  # shutdown waits for its record
        try:
            if not recorder.accepts():
                raise unrecordable()
            principal = await authenticate(
                self.s.authenticator, request.headers.get("authorization"), record
            )
            recorder.made_by(record.id, principal.key_id)  # its receipt is pending for this key
            ctx = snapshot(self.s.policies, principal, record)
            body = await read_json(request, max_depth=self.s.config.max_json_depth)
            record.request_body = body
            return await unless_client_leaves(request, lambda: handler(record, ctx, body))
        except GatewayError as exc:
            failed(record, exc)
            # an error the policy had a say in carries its decision, as every answer does
            exc.extra_headers.update(decision_headers(record.decision))
            finish(recorder, record)
            raise
        except asyncio.CancelledError:
            # Not the client (that is ClientGone): the server is stopping under the request.
            record.fail(Status.INCOMPLETE, 503, "gateway_shutdown", "cancelled at shutdown")
            finish(recorder, record)
            raise
        except Exception as exc:
            record.fail(Status.GATEWAY_ERROR, 500, type(exc).__name__, str(exc)[:2000])
            finish(recorder, record)
            raise

    async def _chat(
        self, record: ExchangeRecord, ctx: RequestContext, body: dict[str, Any]
    ) -> Response:
        chat = validate(ChatRequest, body)
        policy, decision = ctx.policy, ctx.decision
        record.stream = bool(chat.stream)
        record.requested_model = chat.model
        admitted = await self.s.detectors.evaluate(
            policy.heavy_at(Stage.INPUT),
            partial(admit, policy, body, decision),
            undo=decision.mark(),
        )
        allowed = policy.policy.models.allow
        upstream_route = route(self.s.router, record, admitted.alias, allowed)
        if admitted.refusal is not None:
            return self._refuse(record, decision, admitted, chat)
        limits = await take_quota(
            self.s.quota, record, ctx, admitted.alias, admitted.body, stream=bool(chat.stream)
        )
        disclose = first_turn(body)
        if chat.stream:
            output = OutputStage(policy, decision, disclose=disclose)
            decision.disclosure = disclose and policy.policy.disclosure is not None
            return await open_stream(
                self.s,
                upstream_route,
                record,
                admitted.body,
                inject_usage=not chat.wants_usage,
                output=output,
                headers={**decision_headers(decision), **limits},
                heavy=policy.heavy_at(Stage.OUTPUT),
                frames=self._tool_frames(policy, decision, output, admitted.body),
            )
        raw, answer = await forward(
            self.s.upstream, upstream_route, "/chat/completions", record, admitted.body
        )
        # The record keeps the backend's answer as given; the decision says what was changed.
        record.response_body = answer
        filtered = upstream_filtered(answer.get("choices"))  # before the gateway's own blocks
        reviewed = partial(_output, policy, answer, decision, disclose=disclose)
        changed = await self.s.detectors.evaluate(
            policy.heavy_at(Stage.OUTPUT), reviewed, undo=decision.mark()
        )
        if changed is not None:
            raw = changed
        settle(record, decision, filtered)
        return answered(self.s.recorder, record, raw, answer, limits)

    def _tool_frames(
        self,
        policy: CompiledPolicy,
        decision: Decision,
        output: OutputStage,
        body: dict[str, Any],
    ) -> FramesFactory | None:
        """A chat stream's frames that hold its tool calls to the policy's scope (None: the
        default frames, when the policy does not govern tools)."""
        if not policy.tools.active:
            return None
        active = output if output.active else None
        heavy = policy.heavy_at(Stage.OUTPUT)

        def frames(ending: Ending, strip: bool, _: Route) -> Frames:
            tools = ToolStream(policy.tools, decision)
            choices = body.get("n") or 1
            return ChatFrames(
                self.s,
                ending,
                strip_usage=strip,
                output=active,
                choices=choices,
                heavy=heavy,
                tools=tools,
            )

        return frames

    def _refuse(
        self, record: ExchangeRecord, decision: Decision, admitted: Admission, chat: ChatRequest
    ) -> Response:
        response, completion = refusal_response(
            admitted.alias,
            admitted.refusal or "",
            chat.n or 1,
            stream=bool(chat.stream),
            include_usage=chat.wants_usage,
            decision=decision,
        )
        refused(self.s.recorder, record, completion)
        return response

    async def _embeddings(
        self, record: ExchangeRecord, ctx: RequestContext, body: dict[str, Any]
    ) -> Response:
        validate(EmbeddingsRequest, body)
        admitted = await self.s.detectors.evaluate(
            ctx.policy.heavy_at(Stage.INPUT),
            partial(admit_embeddings, ctx.policy, body, ctx.decision),
            undo=ctx.decision.mark(),
        )
        allowed = ctx.policy.policy.models.allow
        upstream_route = route(self.s.router, record, admitted.alias, allowed)
        limits = await take_quota(
            self.s.quota, record, ctx, admitted.alias, admitted.body, stream=False
        )
        raw, answer = await forward(
            self.s.upstream, upstream_route, "/embeddings", record, admitted.body
        )
        record.response_body = _without_vectors(answer)
        return answered(self.s.recorder, record, raw, answer, limits)


def _output(
    policy: CompiledPolicy, answer: dict[str, Any], decision: Decision, *, disclose: bool
) -> bytes | None:
    """The output stage on a whole answer (the output rules, then the tool calls' scope): the
    new body when it changed, else None. It works on a copy of the choices it may change, so
    the record keeps the answer as given."""
    output = OutputStage(policy, decision, disclose=disclose)
    if not output.active and not policy.tools.active:
        return None
    choices = [_copied(c) for c in answer.get("choices") or ()]
    reviewed = {**answer, "choices": choices}
    changed = output.active and output.answer(reviewed)  # the model's text, as it wrote it
    if not scope_calls(policy.tools, reviewed, decision) and not changed:
        return None
    return json.dumps(reviewed).encode()


def _copied(choice: Any) -> Any:
    """A choice the output stage may change (its text, finish reason, logprobs) as a copy."""
    if not isinstance(choice, dict):
        return choice
    message = choice.get("message")
    return {**choice, "message": dict(message) if isinstance(message, dict) else message}


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
