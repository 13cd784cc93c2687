"""A legacy completion (``/v1/completions``) in the chat shape the policy reads, and back.

The input rules read a completion request as chat messages (one ``user`` message per prompt),
the output rules its answer as chat choices (``choices[i].text`` as
``choices[i].message.content``): so evidence indexes are those of the chat view, as a record's
view (``records.shapes.as_chat``) shows them. What the rules change is put back into the
prompt sent upstream and the texts sent to the client. The gateway's own refusals are written
in the completion shape, whole or as a stream.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.responses import Response

from gateway.pipeline.stages.respond import decision_headers
from gateway.pipeline.stream_events import frame
from gateway.policy.decision import Decision
from gateway.records import shapes

ENDPOINT = "completions"


def prompts(prompt: Any) -> list[str] | None:
    """The prompt's texts (a string is one), or None for token arrays, which no rule reads."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    return None


def prompt_count(prompt: Any) -> int:
    """How many prompts the backend answers (``n`` answers each): a string or one token array
    is one, a list of strings or of token arrays one per item."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return 1
    return len(prompt) if isinstance(prompt, list) else 1


def prompt_tokens(prompt: Any) -> int:
    """A token-array prompt's tokens, counted exactly."""
    if not isinstance(prompt, list):
        return 0
    return sum(len(p) if isinstance(p, list) else 1 for p in prompt)


def request_view(body: dict[str, Any], *, n: int) -> dict[str, Any]:
    """The request as a chat body for the input stage: its fields, with the record's view's
    messages (one user message per prompt) for the prompt, and the ``suffix`` (text the backend
    reads after its answer) as one more user message, read by the same rules; ``n`` is the
    count of answers the backend generates (``best_of`` when larger)."""
    view = {k: v for k, v in body.items() if k != "prompt"}
    view["messages"] = shapes.request_view(ENDPOINT, body)["messages"]
    if isinstance(body.get("suffix"), str) and prompts(body.get("prompt")) is not None:
        view["messages"] = [*view["messages"], {"role": "user", "content": body["suffix"]}]
    view["n"] = n
    return view


def answer_view(answer: dict[str, Any]) -> dict[str, Any]:
    """A completion's choices as chat choices, as the record's view reads them (copies: the
    record keeps the answer as given)."""
    view: dict[str, Any] = shapes.answer_view(ENDPOINT, answer)
    return view


def upstream_body(
    body: dict[str, Any], admitted: dict[str, Any], texts: list[str] | None
) -> dict[str, Any]:
    """What goes upstream: the client's body with the admitted prompt and suffix (redactions
    made) and output limit (``max_tokens`` as the limits left it)."""
    sent = dict(body)
    if texts is not None:
        redacted = [m["content"] for m in admitted["messages"]]
        if isinstance(body.get("suffix"), str):
            sent["suffix"] = redacted[len(texts)]
        redacted = redacted[: len(texts)]
        sent["prompt"] = redacted[0] if isinstance(body.get("prompt"), str) else redacted
    if "max_tokens" in admitted:
        sent["max_tokens"] = admitted["max_tokens"]
    return sent


def answer_of(view: dict[str, Any]) -> dict[str, Any]:
    """The reviewed chat view back in the completion shape."""
    choices = []
    for choice in view["choices"]:
        text = choice["message"]["content"]
        choices.append({k: v for k, v in choice.items() if k != "message"} | {"text": text})
    return {**view, "choices": choices}


def refusal(model: str, text: str, n: int) -> dict[str, Any]:
    """The gateway's refusal as a completion: every choice the refusal, ``content_filter``."""
    return {
        "id": "cmpl-" + secrets.token_hex(12),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "text": text, "logprobs": None, "finish_reason": "content_filter"}
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def refusal_stream(completion: dict[str, Any], include_usage: bool) -> bytes:
    """The same refusal as a complete stream: each choice's text, then usage if asked, [DONE]."""
    head = {k: completion[k] for k in ("id", "object", "created", "model")}
    frames = [frame({**head, "choices": [choice]}) for choice in completion["choices"]]
    if include_usage:
        frames.append(frame({**head, "choices": [], "usage": completion["usage"]}))
    return b"".join(frames) + b"data: [DONE]\n\n"


def refusal_response(
    completion: dict[str, Any], *, stream: bool, include_usage: bool, decision: Decision
) -> Response:
    headers = decision_headers(decision)
    if stream:
        body = refusal_stream(completion, include_usage)
        return Response(body, media_type="text/event-stream", headers=headers)
    return Response(json.dumps(completion), media_type="application/json", headers=headers)
