"""The mock upstream as a bare ASGI application.

It is the demo backend and the upstream under tests and benchmarks, so routing
is a dict lookup and every constant response body is encoded once, at startup.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.mock.asgi import (
    BadRequest,
    Exchange,
    Receive,
    RequestRecord,
    Scope,
    Send,
    dumps,
    error_body,
    header,
    read_body,
    request_headers,
    send_bytes,
    send_json,
)
from gateway.mock.chat import ChatHandler
from gateway.mock.completions import CompletionsHandler
from gateway.mock.embeddings import embeddings_body
from gateway.mock.responses import ResponsesHandler
from gateway.mock.script import Script

Handler = Callable[[Exchange], Awaitable[None]]

MAX_LOGGED_REQUESTS = 10_000
MODEL_CREATED = 1_700_000_000
_MODEL_PREFIX = "/v1/models/"
_RESPONSE_PREFIX = "/v1/responses/"
_HEALTHY = dumps({"status": "ok"})


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "situate-mock"}


class MockUpstream:
    """An OpenAI-compatible upstream that follows a `Script`.

    `token_delay`, when given, replaces the script's default delay between
    streamed chunks (rules with their own delay still win).
    """

    def __init__(self, script: Script, token_delay: float | None = None) -> None:
        self.script = script
        delay = script.token_delay if token_delay is None else token_delay
        self._chat = ChatHandler(script, delay)
        self._responses = ResponsesHandler(self._chat)
        self._completions = CompletionsHandler(self._chat)
        # Per instance, so separate mocks in one test process never share history.
        self._requests: deque[RequestRecord] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self._model_bodies = {m: dumps(_model_object(m)) for m in script.models}
        self._models_body = dumps(
            {"object": "list", "data": [_model_object(m) for m in script.models]}
        )
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/chat/completions": {"POST": self._chat_completions},
            "/v1/responses": {"POST": self._create_response},
            "/v1/completions": {"POST": self._create_completion},
            "/v1/embeddings": {"POST": self._embeddings},
            "/v1/models": {"GET": self._list_models},
            "/_mock/requests": {"GET": self._get_log, "DELETE": self._clear_log},
            "/healthz": {"GET": self._healthz},
        }
        self._model_route: dict[str, Handler] = {"GET": self._get_model}
        self._response_route: dict[str, Handler] = {
            "GET": self._stored_response,
            "DELETE": self._stored_response,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            # Closing before accepting makes the server refuse the handshake.
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        routes = self._routes.get(path)
        if routes is None and path.startswith(_MODEL_PREFIX):
            routes = self._model_route
        elif routes is None and path.startswith(_RESPONSE_PREFIX):
            routes = self._response_route
        if routes is None:
            message = f"Unknown request URL: {method} {path}."
            await send_json(
                send, 404, error_body(message, "invalid_request_error", None, "unknown_url")
            )
            return
        handler = routes.get(method)
        if handler is None:
            message = f"Method {method} is not allowed for {path}."
            allow = (b"allow", ", ".join(routes).encode())
            body = error_body(message, "invalid_request_error", None, "method_not_allowed")
            await send_json(send, 405, body, (allow,))
            return
        ex = Exchange(scope, receive, send, self._new_record(scope, path))
        if self.script.uuid_request_id and not _uuid_or_absent(header(scope, b"x-request-id")):
            ex.record["outcome"] = "fault"
            self._requests.append(ex.record)
            await send_bytes(send, 400, b"", "")
            return
        if not path.startswith("/v1/"):
            await handler(ex)
            return
        try:
            await handler(ex)
        except BadRequest as exc:
            body = error_body(exc.message, "invalid_request_error", exc.param, exc.code)
            await send_json(send, 400, body)
        except _ClientGone:
            ex.record["outcome"] = "client_disconnected"
        finally:
            self._requests.append(ex.record)

    @staticmethod
    def _new_record(scope: Scope, path: str) -> RequestRecord:
        return {
            "request_id": header(scope, b"x-situate-request-id") or header(scope, b"x-request-id"),
            "headers": request_headers(scope),
            "path": path,
            "model": None,
            "stream": False,
            "authorization": header(scope, b"authorization"),
            "body": None,
            "outcome": "completed",
            "chunks_sent": 0,
        }

    async def _chat_completions(self, ex: Exchange) -> None:
        body = await self._logged_body(ex)  # so tests can see exactly what reached the upstream
        plan = self._chat.plan(body)
        await self._chat.respond(ex, plan)

    async def _create_response(self, ex: Exchange) -> None:
        body = await self._logged_body(ex)
        await self._responses.create(ex, body)

    async def _create_completion(self, ex: Exchange) -> None:
        await self._completions.create(ex, await self._logged_body(ex))

    async def _stored_response(self, ex: Exchange) -> None:
        await self._responses.lookup(ex, ex.scope["path"][len(_RESPONSE_PREFIX) :])

    @staticmethod
    async def _logged_body(ex: Exchange) -> Any:
        """The JSON body, logged with its model and stream flag for tests to see."""
        body = await _json_body(ex)
        ex.record["body"] = body
        if isinstance(body, dict):
            model = body.get("model")
            ex.record["model"] = model if isinstance(model, str) else None
            ex.record["stream"] = body.get("stream") is True
        return body

    async def _embeddings(self, ex: Exchange) -> None:
        body = await _json_body(ex)
        ex.record["body"] = body
        model, payload = embeddings_body(body, self.script.embedding_dimensions)
        ex.record["model"] = model
        await send_json(ex.send, 200, payload)

    async def _list_models(self, ex: Exchange) -> None:
        await send_json(ex.send, 200, self._models_body)

    async def _get_model(self, ex: Exchange) -> None:
        model_id = ex.scope["path"][len(_MODEL_PREFIX) :]
        ex.record["model"] = model_id
        body = self._model_bodies.get(model_id)
        if body is None:
            message = f"The model '{model_id}' does not exist"
            body = error_body(message, "invalid_request_error", "model", "model_not_found")
            await send_json(ex.send, 404, body)
            return
        await send_json(ex.send, 200, body)

    async def _get_log(self, ex: Exchange) -> None:
        await send_json(ex.send, 200, dumps(list(self._requests)))

    async def _clear_log(self, ex: Exchange) -> None:
        cleared = len(self._requests)
        self._requests.clear()
        await send_json(ex.send, 200, dumps({"cleared": cleared}))

    async def _healthz(self, ex: Exchange) -> None:
        await send_json(ex.send, 200, _HEALTHY)


def _uuid_or_absent(value: str | None) -> bool:
    if value is None:
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def _json_body(ex: Exchange) -> Any:
    raw = await read_body(ex.receive)
    if raw is None:
        raise _ClientGone
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        message = (
            "We could not parse the JSON body of your request. The OpenAI API expects "
            "a JSON payload."
        )
        raise BadRequest(message) from exc


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
