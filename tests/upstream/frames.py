"""A backend process that sends chosen SSE frames, for what ``gateway mock-upstream`` cannot
script: a tool call's arguments or a refusal carrying the backend's key split across two
frames, and a 200 stream whose first event is an error (as vLLM and llama.cpp's server send
one for a request they refuse once streaming has begun).

Run as ``python -m tests.upstream.frames --port N --key K``; the frames are chosen by a marker
in the last user message. ``GET /tries`` says how many requests each marker drew.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

CONTEXT_ERROR = "This model's maximum context length is 8192 tokens."
SERVER_ERROR = "worker crashed at 10.1.2.3:9000"
STOPPED = "model runner has unexpectedly stopped at 10.1.2.3:9000"
MARKERS = (
    "TOOL-SPLIT",
    "REFUSAL-SPLIT",
    "LOGPROBS-SPLIT",
    "AUDIO-SPLIT",
    "UNFINISHED",
    "NO-KIND-FIRST",
    "LONG-SERVER-ERROR-FIRST",
    "SERVER-ERROR-FIRST",
    "ERROR-FIRST",
)
_tries: Counter[str] = Counter()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-frames",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "frames-model",
        "choices": [choice],
    }


def _logprobs(tokens: list[str]) -> dict[str, Any]:
    """A delta's logprobs as vLLM sends them: a token each, with its alternatives."""
    top = [{"token": t, "logprob": -0.5, "bytes": list(t.encode())} for t in tokens]
    content = [{**t, "top_logprobs": [t]} for t in top]
    return {"content": content, "refusal": None}


def _pieces(key: str, cut: int) -> list[dict[str, Any]]:
    """The key in content split across two frames, each frame's tokens spelling its part."""
    first, second = f"my key is {key[:cut]}", f"{key[cut:]} ok"
    chunks = [_chunk({"content": first}), _chunk({"content": second})]
    chunks[0]["choices"][0]["logprobs"] = _logprobs(["my key is ", *key[:cut]])
    chunks[1]["choices"][0]["logprobs"] = _logprobs([*key[cut:], " ok"])
    return chunks


def _call(arguments: str, first: bool) -> dict[str, Any]:
    call: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
    if first:
        call.update(id="call_1", type="function")
        call["function"]["name"] = "lookup"
    return {"tool_calls": [call]}


def frames(marker: str | None, key: str) -> list[dict[str, Any]]:
    """The stream's events (each a JSON object) for ``marker``."""
    cut = len(key) // 2
    if marker == "ERROR-FIRST":
        error = {"message": CONTEXT_ERROR, "type": "invalid_request_error"}
        return [{"error": {**error, "param": "messages", "code": "context_length_exceeded"}}]
    if marker == "NO-KIND-FIRST":
        return [{"error": STOPPED}]
    if marker == "LONG-SERVER-ERROR-FIRST":
        long = f"{SERVER_ERROR} " + "x" * 3000
        return [{"error": {"message": long, "type": "server_error", "code": None}}]
    if marker == "SERVER-ERROR-FIRST":
        return [{"error": {"message": SERVER_ERROR, "type": "server_error", "code": None}}]
    role = _chunk({"role": "assistant", "content": None})
    if marker == "LOGPROBS-SPLIT":
        return [role, *_pieces(key, cut), _chunk({}, "stop")]
    if marker == "AUDIO-SPLIT":
        audio = [{"id": "audio_1", "transcript": f"it is {key[:cut]}"}, {"transcript": key[cut:]}]
        return [role, *(_chunk({"audio": a}) for a in audio), _chunk({}, "stop")]
    if marker == "UNFINISHED":  # ends with neither a finish nor [DONE]
        return [role, _chunk({"content": "hello s"}), _chunk({"content": "k"})]
    if marker == "TOOL-SPLIT":
        return [
            role,
            _chunk(_call(f'{{"token": "{key[:cut]}', True)),
            _chunk(_call(f'{key[cut:]}"}}', False)),
            _chunk({}, "tool_calls"),
        ]
    if marker == "REFUSAL-SPLIT":
        return [
            role,
            _chunk({"refusal": f"I will not repeat {key[:cut]}"}),
            _chunk({"refusal": f"{key[cut:]} to you."}),
            _chunk({}, "stop"),
        ]
    return [role, _chunk({"content": "hello from frames"}), _chunk({}, "stop")]


def _marker(body: dict[str, Any]) -> str | None:
    messages = body.get("messages") or []
    text = str(messages[-1].get("content", "")) if messages else ""
    return next((m for m in MARKERS if m in text), None)  # (a marker may hold another)


def app(key: str) -> Starlette:
    async def chat(request: Request) -> StreamingResponse:
        marker = _marker(await request.json())
        _tries[marker or "plain"] += 1

        async def body() -> AsyncIterator[bytes]:
            for event in frames(marker, key):
                yield b"data: " + json.dumps(event).encode() + b"\n\n"
            if marker != "UNFINISHED":
                yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def tries(_: Request) -> JSONResponse:
        return JSONResponse(dict(_tries))

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/tries", tries),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.key), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
