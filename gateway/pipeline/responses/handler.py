"""``POST /v1/responses`` through the same path as chat (``Pipeline.run``):

    validate → previous_response_id → tool scope (declared) → input rules (the chat view of
    this request's own input) → route → quota → forward (per route: a Responses body to a
    native backend, a chat one to a translated backend) → tool scope (calls) and output
    rules (the answer's chat view, put back into the Response) → respond → record

The record keeps the client's body and the Response before the gateway's changes (the
backend's on a native backend, the gateway's translation otherwise; the decision says what
changed), its id in ``response_id``, and notes on it in its decision (``responses``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.responses import Response

from gateway.errors import InvalidRequest
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.pipeline.needs import PipelineNeeds
from gateway.pipeline.output import OutputStage
from gateway.pipeline.responses import request as requests
from gateway.pipeline.responses.answer import (
    apply_view,
    chat_usage,
    message_item,
    response_of,
    shell_of,
    text_part,
)
from gateway.pipeline.responses.chain import Chain, resolve
from gateway.pipeline.responses.stream import open_responses_stream
from gateway.pipeline.responses.translate import (
    chat_body,
    items_of,
    native_body,
    redacted_items,
    redacted_prompt,
)
from gateway.pipeline.stages.forward import forward_built
from gateway.pipeline.stages.inputs import Admission, admit
from gateway.pipeline.stages.quota import take_quota
from gateway.pipeline.stages.record import finish
from gateway.pipeline.stages.respond import answered, decision_headers, settle, upstream_filtered
from gateway.pipeline.stages.route import route
from gateway.pipeline.tools_chat import scope_calls, scope_declared
from gateway.policy.actions import Stage
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.engine import message_texts
from gateway.policy.limits import check_sizes
from gateway.records.responses import ResponseLookup, StoredResponse, notes_of
from gateway.records.shapes import answer_view, request_view, response_messages
from gateway.records.status import Status
from gateway.upstream.router import Route, RoutePlan

RESPONSES, CHAT = "/responses", "/chat/completions"


@dataclass(slots=True)
class Turn:
    """What one request sends, whichever route serves it."""

    body: dict[str, Any]  # the client's, the declared tools out of scope removed
    admitted: Admission  # the chat view of its own input, as the input rules left it
    chain: Chain | None

    def build(self, target: Route) -> tuple[str, dict[str, Any]]:
        head = 1 if isinstance(self.body.get("instructions"), str) else 0
        messages = self.admitted.body["messages"]
        limit = self.admitted.body.get("max_tokens")
        if target.backend.responses == "native":
            given = items_of(self.body)
            items = redacted_items(given, messages[head:])
            chain = self.chain
            prior = None if chain is None or chain.passes_through(target) else chain.rebuilt()
            body = {**self.body, "instructions": messages[0]["content"]} if head else self.body
            if "prompt" in body:
                variables = messages[head + len(given) :]
                body = {**body, "prompt": redacted_prompt(body["prompt"], variables)}
            sent = native_body(body, items, prior)
            return RESPONSES, {**sent, **({"max_output_tokens": limit} if limit else {})}
        prior_messages = _chat_messages(self.chain.rebuilt()) if self.chain else []
        chat = chat_body(self.body, prior_messages, messages)
        return CHAT, {**chat, **({"max_tokens": limit} if limit else {})}


class Responses:
    """The handler ``Pipeline.run`` calls for one Responses request."""

    def __init__(self, services: PipelineNeeds, lookup: ResponseLookup) -> None:
        self.s = services
        self.lookup = lookup

    async def __call__(
        self, record: ExchangeRecord, ctx: RequestContext, body: dict[str, Any]
    ) -> Response:
        request = requests.checked(body)
        policy, decision = ctx.policy, ctx.decision
        record.stream = bool(request.stream)
        record.requested_model = request.model
        chain = await self._chain(ctx, request)
        prior = _chat_messages(chain.items) if chain is not None and chain.items else []
        scoped, admitted = await self.s.detectors.evaluate(
            policy.heavy_at(Stage.INPUT),
            partial(_admit, policy, body, decision, prior),
            undo=decision.mark(),
        )
        plan = route(self.s.router, record, admitted.alias, policy.policy.models.allow)
        _translatable(plan, scoped, chain)
        shell = shell_of(scoped, request)  # the tools echoed are those the model was given
        record.response_notes = notes_of(
            False, request.stored, policy.policy.record.content, request.instructions is not None
        )
        if chain is not None and chain.redacted:
            record.response_notes["previous_redacted"] = True
        if admitted.refusal is not None:
            return self._refuse(record, ctx, shell, admitted.refusal)
        _note_admitted(record.response_notes, scoped, admitted)
        counted = {**admitted.body, "messages": [*prior, *admitted.body["messages"]]}
        limits = await take_quota(
            self.s.quota, record, ctx, admitted.alias, counted, stream=bool(request.stream)
        )
        turn = Turn(scoped, admitted, chain)
        disclose = chain is None and not _answered_before(body)
        if request.stream:
            return await self._stream(record, ctx, plan, turn, shell, limits, disclose)
        return await self._whole(record, ctx, plan, turn, shell, limits, disclose)

    async def _chain(self, ctx: RequestContext, request: requests.ResponsesRequest) -> Chain | None:
        if request.previous_response_id is None:
            return None
        return await resolve(
            self.lookup, ctx.principal.context, request.previous_response_id, ctx.policy,
            self.s.detectors,
        )

    async def _whole(
        self,
        record: ExchangeRecord,
        ctx: RequestContext,
        plan: RoutePlan,
        turn: Turn,
        shell: dict[str, Any],
        limits: dict[str, str],
        disclose: bool,
    ) -> Response:
        policy, decision = ctx.policy, ctx.decision
        served, raw, answer = await forward_built(self.s.upstream, plan, record, turn.build)
        native = served.backend.responses == "native"
        response = answer if native else response_of(answer, shell)
        assert record.response_notes is not None
        record.response_notes["native"] = native
        record.response_body, record.response_id = response, _id_of(response)
        filtered = upstream_filtered(answer_view("responses", response).get("choices"))
        delivered = await self.s.detectors.evaluate(
            policy.heavy_at(Stage.OUTPUT),
            partial(_output, policy, response, decision, disclose=disclose),
            undo=decision.mark(),
        )
        settle(record, decision, filtered)
        record.on_finish.append(partial(_remember, self.lookup, delivered))
        sent = raw if native and delivered is response else json.dumps(delivered).encode()
        counted = {"model": response.get("model"), "usage": chat_usage(response.get("usage"))}
        return answered(self.s.recorder, record, sent, counted, limits)

    async def _stream(
        self,
        record: ExchangeRecord,
        ctx: RequestContext,
        plan: RoutePlan,
        turn: Turn,
        shell: dict[str, Any],
        limits: dict[str, str],
        disclose: bool,
    ) -> Response:
        policy, decision = ctx.policy, ctx.decision
        output = OutputStage(policy, decision, disclose=disclose)
        decision.disclosure = disclose and policy.policy.disclosure is not None
        native_routes = {r.backend_name for r in _routes(plan) if r.backend.responses == "native"}
        notes = record.response_notes
        assert notes is not None

        had: list[dict[str, Any]] = []  # the Response as the client had it, as it closed

        def noted(rec: ExchangeRecord) -> None:
            notes["native"] = rec.backend in native_routes
            _remember(self.lookup, had[-1] if had else None, rec)

        record.on_finish.append(noted)
        return await open_responses_stream(
            self.s, plan, record, turn.build, shell=shell, output=output, tools=policy.tools,
            decision=decision, headers={**decision_headers(decision), **limits},
            heavy=policy.heavy_at(Stage.OUTPUT), delivered=had.append,
        )

    def _refuse(
        self, record: ExchangeRecord, ctx: RequestContext, shell: dict[str, Any], text: str
    ) -> Response:
        """An input rule's refusal, as an incomplete Response (content_filter)."""
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                 "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}
        response = {
            **shell, "status": "incomplete", "incomplete_details": {"reason": "content_filter"},
            "output": [message_item([text_part(text)])], "usage": usage,
        }
        record.status, record.error_type = Status.BLOCKED, "policy_refusal"
        record.response_body, record.response_id = response, response["id"]
        record.on_finish.append(partial(_remember, self.lookup, response))
        finish(self.s.recorder, record)
        headers = decision_headers(ctx.decision)
        if record.stream:
            return Response(_refusal_events(response), media_type="text/event-stream",
                            headers=headers)
        return Response(json.dumps(response), media_type="application/json", headers=headers)


def _admit(
    policy: CompiledPolicy, body: dict[str, Any], decision: Decision, prior: list[Any]
) -> tuple[dict[str, Any], Admission]:
    """Tool scope on the declared tools, then the input stage on the request's chat view
    (the output limit as chat's ``max_tokens``); the size limits count the earlier turns
    (``prior``) the model is sent too, as chat counts a conversation's history."""
    scoped = scope_declared(policy.tools, body, decision)
    view = request_view("responses", scoped)
    if prior:
        own = view["messages"]
        check_sizes(policy, len(prior) + len(own), 1, message_texts([*prior, *own]), decision)
    limit = view.pop("max_output_tokens", None)
    if limit is not None:
        view["max_tokens"] = limit
    try:
        return scoped, admit(policy, view, decision)
    except InvalidRequest as exc:
        if exc.param != "max_tokens":
            raise
        exc.param, exc.message = "max_output_tokens", exc.message.replace(
            "max_tokens", "max_output_tokens"
        )
        raise


def _output(
    policy: CompiledPolicy, response: dict[str, Any], decision: Decision, *, disclose: bool
) -> dict[str, Any]:
    """The calls judged and the output rules over the answer's chat view: the Response as
    the client gets it (``response`` itself when nothing changed)."""
    view = answer_view("responses", response)
    changed = scope_calls(policy.tools, view, decision)
    output = OutputStage(policy, decision, disclose=disclose)
    if output.active:
        changed = output.answer(view) or changed
    return apply_view(response, view) if changed else response


def _remember(lookup: ResponseLookup, delivered: Any, record: ExchangeRecord) -> None:
    """The finished response into this process's recent ones (its record is written later),
    holding what the record will hold of its content (``record.content``) and what its
    client got (``delivered``; None: read back, it is held to the output rules again)."""
    ctx, notes = record.ctx, record.response_notes or {}
    if ctx is None or record.response_id is None or not isinstance(record.response_body, dict):
        return
    content = str(notes.get("content", "full"))
    request: Any = record.request_body
    response: Any = record.response_body
    if content == "redacted":
        kept = record.redacted(ctx.decision, ctx.policy)
        request, response = kept.request, kept.answer
    elif content == "none":
        request = response = delivered = None
    lookup.recent.put(
        StoredResponse(
            response_id=record.response_id,
            context=ctx.principal.context,
            exchange_id=record.id,
            backend=record.backend,
            native=bool(notes.get("native")),
            stored=notes.get("stored") is not False,
            content=content,
            request=request,
            response=response,
            delivered=delivered,
            instructions=bool(notes.get("instructions")),
            admitted=notes.get("admitted_input") if content == "full" else None,
            notes=record.response_notes,
        )
    )


def _note_admitted(notes: Any, scoped: dict[str, Any], admitted: Admission) -> None:
    """A record that keeps its content in full keeps the input as the input rules left it
    too (``admitted_input``, where they changed it): later turns are rebuilt from that."""
    if not isinstance(notes, dict) or notes.get("content") != "full":
        return
    head = 1 if isinstance(scoped.get("instructions"), str) else 0
    items = items_of(scoped)
    sent = redacted_items(items, admitted.body["messages"][head:])
    if sent != items:
        notes["admitted_input"] = sent


def _chat_messages(items: list[Any]) -> list[dict[str, Any]]:
    """Earlier turns as chat messages (what chat cannot carry, such as reasoning, left out)."""
    return [m for m in response_messages(None, items) if "item" not in m]


def _routes(plan: RoutePlan) -> list[Route]:
    return [r for stage in plan.stages for r in stage.routes]


def _translatable(plan: RoutePlan, body: dict[str, Any], chain: Chain | None) -> None:
    """A plan with a translated backend: the fields it cannot carry are a 400 now, and so is
    a conversation that cannot be rebuilt where the backend cannot resolve it."""
    routes = _routes(plan)
    if any(r.backend.responses != "native" for r in routes):
        requests.translatable(body)
    if chain is not None and not all(chain.passes_through(r) for r in routes):
        chain.rebuilt()


def _answered_before(body: dict[str, Any]) -> bool:
    items = body.get("input")
    return isinstance(items, list) and any(
        isinstance(i, dict) and (i.get("role") == "assistant" or i.get("type") == "function_call")
        for i in items
    )


def _id_of(response: dict[str, Any]) -> str | None:
    rid = response.get("id")
    return rid if isinstance(rid, str) else None


def _refusal_events(response: dict[str, Any]) -> bytes:
    """An input refusal as a stream: the refusal's text as the events a client renders (its
    item and part added, the text's delta and done), then ``response.incomplete``."""
    created = {**response, "status": "in_progress", "output": [], "usage": None}
    item = response["output"][0]
    part, text = item["content"][0], item["content"][0]["text"]
    at = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": created},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        {"type": "response.output_text.delta", **at, "delta": text, "logprobs": []},
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.incomplete", "response": response},
    ]
    return b"".join(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(events)
    )
