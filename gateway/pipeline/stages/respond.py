"""The respond stage: the decision headers on every answer, and the answers the gateway writes
itself (refusals in OpenAI's shape, as a whole answer or as a stream)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.responses import Response

from gateway.errors import ServiceUnavailable
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.stages.record import finish
from gateway.pipeline.stream_events import frame
from gateway.policy.actions import Action, Stage
from gateway.policy.decision import Decision
from gateway.records.recorder import ExchangeRecorder
from gateway.records.status import Status


def decision_headers(decision: Decision | None) -> dict[str, str]:
    if decision is None:
        return {}
    headers = {
        "x-situate-decision": decision.id,
        "x-situate-policy-revision": decision.policy_revision[:12],
    }
    if decision.warnings:
        headers["x-situate-warning"] = ",".join(decision.warnings)
    if decision.disclosure:
        headers["x-situate-disclosure"] = "applied"
    return headers


def upstream_filtered(choices: Any) -> str | None:
    """What to record when the backend's own content filter ended choices (a provider's
    filter, such as Azure's), so the record does not put it down to the gateway's policy."""
    ended = [
        str(choice.get("index", i))
        for i, choice in enumerate(choices or ())
        if isinstance(choice, dict) and choice.get("finish_reason") == "content_filter"
    ]
    if not ended:
        return None
    return (
        f"the backend's own content filter ended choice {', '.join(ended)} "
        "(finish_reason content_filter); no rule of the policy blocked it"
    )


def refusal_completion(model: str, text: str, n: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": text},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def refusal_stream(completion: dict[str, Any], include_usage: bool) -> bytes:
    """The same refusal as a complete event stream: role, content, content_filter, [DONE]."""
    head = {k: completion[k] for k in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk"
    frames = []
    for choice in completion["choices"]:
        text, index = choice["message"]["content"], choice["index"]
        for delta, reason in (
            ({"role": "assistant", "content": ""}, None),
            ({"content": text}, None),
            ({}, "content_filter"),
        ):
            frames.append(
                frame(
                    {
                        **head,
                        "choices": [
                            {
                                "index": index,
                                "delta": delta,
                                "logprobs": None,
                                "finish_reason": reason,
                            }
                        ],
                    }
                )
            )
    if include_usage:
        frames.append(frame({**head, "choices": [], "usage": completion["usage"]}))
    return b"".join(frames) + b"data: [DONE]\n\n"


def refusal_response(
    model: str, text: str, n: int, *, stream: bool, include_usage: bool, decision: Decision
) -> tuple[Response, dict[str, Any]]:
    completion = refusal_completion(model, text, n)
    headers = decision_headers(decision)
    if stream:
        body = refusal_stream(completion, include_usage)
        return Response(body, media_type="text/event-stream", headers=headers), completion
    return Response(
        json.dumps(completion), media_type="application/json", headers=headers
    ), completion


def answered(
    recorder: ExchangeRecorder,
    record: ExchangeRecord,
    raw: bytes,
    answer: dict[str, Any],
    limits: dict[str, str],
) -> Response:
    """A whole answer's end: its model and usage to the record, the record finished, and the
    answer sent with the decision's headers (and the limits')."""
    record.response_model = answer.get("model")
    record.take_usage(answer.get("usage"))
    finish(recorder, record)
    headers = {**decision_headers(record.decision), **limits}
    return Response(raw, media_type="application/json", headers=headers)


def settle(record: ExchangeRecord, decision: Decision, filtered: str | None) -> None:
    """Whose doing an answer's ``content_filter`` was: the policy's, or the backend's own."""
    blocked = [
        o.rule
        for o in decision.outcomes
        if o.stage == Stage.OUTPUT and o.enforced == Action.BLOCK
    ]
    if blocked:
        record.end(Status.BLOCKED, "policy_violation", f"output blocked by rule '{blocked[0]}'")
    elif filtered is not None:
        record.end(Status.UPSTREAM_FILTERED, "upstream_content_filter", filtered)


def unrecordable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The gateway cannot record exchanges right now, so it serves none; try again shortly.",
        code="recording_unavailable",
        headers={"retry-after": "5"},
    )


def refused(recorder: ExchangeRecorder, record: ExchangeRecord, answer: Any) -> None:
    """An input the policy refused, answered with the gateway's own refusal: recorded blocked
    (``policy_refusal``) with that answer as its body."""
    record.status, record.error_type = Status.BLOCKED, "policy_refusal"
    record.response_body = answer
    finish(recorder, record)
