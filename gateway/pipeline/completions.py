"""``POST /v1/completions`` (legacy text completions) through the same path as chat.

Validated (the fields the gateway reads, strictly; the rest pass through), the prompt read by
the input rules as chat messages (``completions_shape``: one user message per prompt) with the
topic scope and limits as chat's, redactions put back into the prompt sent upstream, routed,
counted against the quota, forwarded to the backend's ``/completions``, its texts held to the
output rules (whole, or a piece at a time on a stream: ``ChatFrames`` with the ``COMPLETION``
shape) and recorded. Token-array prompts pass only where no input rule would read the text.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from pydantic import Field, StrictBool, StrictInt, StrictStr
from starlette.responses import Response

from gateway.errors import InvalidRequest
from gateway.pipeline import completions_shape as shape
from gateway.pipeline.assemble import CompletionAssembler
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.request import _FINITE, StreamOptions, _Open, validate
from gateway.pipeline.stages.forward import forward
from gateway.pipeline.stages.inputs import Admission, admit, refuse_tokens
from gateway.pipeline.stages.limits import apply_limits, choose_model
from gateway.pipeline.stages.quota import take_quota
from gateway.pipeline.stages.respond import (
    answered,
    decision_headers,
    refused,
    settle,
    upstream_filtered,
)
from gateway.pipeline.stages.route import route
from gateway.pipeline.stream import Ending, Frames
from gateway.pipeline.stream_chat import COMPLETION, ChatFrames
from gateway.pipeline.stream_open import open_stream
from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.limits import exceeds
from gateway.upstream.router import Route, RoutePlan

PATH = "/completions"


class CompletionRequest(_Open):
    model: StrictStr | None = Field(None, min_length=1, description="else the context's default")
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(None, ge=1, le=128)
    best_of: StrictInt | None = Field(None, ge=1, le=128)
    max_tokens: StrictInt | None = Field(None, ge=0)
    logprobs: StrictInt | None = Field(None, ge=0, le=5)
    echo: StrictBool | None = None
    suffix: StrictStr | None = None
    # not judged by the gateway, but the backend must get a number: OpenAI's ranges
    temperature: _FINITE | None = Field(None, ge=0, le=2)
    top_p: _FINITE | None = Field(None, ge=0, le=1)
    presence_penalty: _FINITE | None = Field(None, ge=-2, le=2)
    frequency_penalty: _FINITE | None = Field(None, ge=-2, le=2)
    seed: StrictInt | None = None

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def generated(self) -> int:
        """How many answers the backend generates: ``best_of`` of them when it is larger
        (what the limits and the quota count)."""
        return max(self.n or 1, self.best_of or 1)


def _checked(body: dict[str, Any]) -> CompletionRequest:
    request = validate(CompletionRequest, body)
    if request.prompt == []:
        raise InvalidRequest(
            "Invalid value for 'prompt': it must not be empty.",
            param="prompt",
            code="invalid_value",
        )
    if request.best_of is not None and request.best_of < (request.n or 1):
        raise InvalidRequest(
            "Invalid value for 'best_of': it must be at least 'n'.",
            param="best_of",
            code="invalid_value",
        )
    return request


class Completions:
    """The handler ``Pipeline.run`` calls for one completion request."""

    def __init__(self, services: PipelineNeeds) -> None:
        self.s = services

    async def __call__(
        self, record: ExchangeRecord, ctx: RequestContext, body: dict[str, Any]
    ) -> Response:
        request = _checked(body)
        policy, decision = ctx.policy, ctx.decision
        record.stream = bool(request.stream)
        record.requested_model = request.model
        texts = shape.prompts(body["prompt"])
        choices = (request.n or 1) * shape.prompt_count(body["prompt"])  # n per prompt
        view = shape.request_view(body, n=request.generated)
        admitted = await self.s.detectors.evaluate(
            policy.heavy_at(Stage.INPUT),
            partial(_admit, policy, view, decision, body["prompt"], readable=texts is not None),
            undo=decision.mark(),
        )
        upstream_route = route(self.s.router, record, admitted.alias, policy.policy.models.allow)
        if admitted.refusal is not None:
            return self._refuse(record, decision, admitted, request, choices)
        limits = await take_quota(
            self.s.quota, record, ctx, admitted.alias, admitted.body, stream=bool(request.stream)
        )
        sent = shape.upstream_body(body, admitted.body, texts)
        if request.stream:
            return await self._stream(record, ctx, upstream_route, sent, choices, limits, request)
        raw, answer = await forward(self.s.upstream, upstream_route, PATH, record, sent)
        record.response_body = answer  # the backend's, as given; the decision says what changed
        filtered = upstream_filtered(answer.get("choices"))
        reviewed = partial(_output, policy, answer, decision)
        changed = await self.s.detectors.evaluate(
            policy.heavy_at(Stage.OUTPUT), reviewed, undo=decision.mark()
        )
        settle(record, decision, filtered)
        return answered(self.s.recorder, record, changed or raw, answer, limits)

    async def _stream(
        self,
        record: ExchangeRecord,
        ctx: RequestContext,
        plan: RoutePlan,
        sent: dict[str, Any],
        choices: int,
        limits: dict[str, str],
        request: CompletionRequest,
    ) -> Response:
        policy, decision = ctx.policy, ctx.decision
        output = OutputStage(policy, decision, disclose=True)
        decision.disclosure = policy.policy.disclosure is not None
        active = output if output.active else None
        heavy = policy.heavy_at(Stage.OUTPUT)

        def frames(ending: Ending, strip: bool, _: Route) -> Frames:
            return ChatFrames(
                self.s,
                ending,
                strip_usage=strip,
                output=active,
                choices=choices,
                heavy=heavy,
                shape=COMPLETION,
                assembler=CompletionAssembler(),
            )

        return await open_stream(
            self.s,
            plan,
            record,
            lambda _: (PATH, sent),
            inject_usage=not request.wants_usage,
            output=output,
            headers={**decision_headers(decision), **limits},
            heavy=heavy,
            frames=frames,
        )

    def _refuse(
        self,
        record: ExchangeRecord,
        decision: Decision,
        admitted: Admission,
        request: CompletionRequest,
        choices: int,
    ) -> Response:
        completion = shape.refusal(admitted.alias, admitted.refusal or "", choices)
        response = shape.refusal_response(
            completion,
            stream=bool(request.stream),
            include_usage=request.wants_usage,
            decision=decision,
        )
        refused(self.s.recorder, record, completion)
        return response


def _admit(
    policy: CompiledPolicy, view: dict[str, Any], decision: Decision, prompt: Any, *,
    readable: bool,
) -> Admission:
    """The input stage on the chat view (a limit exceeded names ``prompt``, which the chat
    view's messages are); a token-array prompt only past the limits (its tokens counted
    exactly), and only where no input rule would have read its text."""
    try:
        if readable:
            return admit(policy, view, decision)
    except InvalidRequest as exc:
        if exc.param != "messages":
            raise
        said = exc.message.replace("'messages'", "'prompt'")
        raise InvalidRequest(said, param="prompt", code=exc.code) from None
    alias = choose_model(policy, view, decision)
    limit, tokens = policy.policy.limits.max_input_tokens, shape.prompt_tokens(prompt)
    if limit is not None and tokens > limit:
        raise exceeds(decision, "limits.max_input_tokens", "prompt", tokens, limit)
    body = apply_limits(policy, view, [], decision)
    refuse_tokens(policy, decision, param="prompt")
    return Admission(body, alias)


def _output(policy: CompiledPolicy, answer: dict[str, Any], decision: Decision) -> bytes | None:
    """The output rules over the answer's texts (as the chat view's choices): the new body
    when they changed it, else None. A completion has no earlier turn: the notice applies."""
    output = OutputStage(policy, decision, disclose=True)
    if not output.active:
        return None
    view = shape.answer_view(answer)
    if not output.answer(view):
        return None
    return json.dumps(shape.answer_of(view)).encode()
