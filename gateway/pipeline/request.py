"""Reading a request body: the fields the gateway uses are validated, the rest pass through."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.requests import ClientDisconnect, Request

from gateway.errors import ClientGone, InvalidRequest

_M = TypeVar("_M", bound=BaseModel)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatRequest(_Open):
    model: str | None = Field(None, min_length=1, description="else the context's default")
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class EmbeddingsRequest(_Open):
    model: str | None = Field(None, min_length=1, description="else the context's default")
    input: str | list[str] | list[int] | list[list[int]]


async def read_json(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body()
    except ClientDisconnect as exc:  # the client went away before its body had arrived
        raise ClientGone("The client disconnected while sending its request.") from exc
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. Send a JSON object "
            f"with 'Content-Type: application/json' ({exc})."
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def unparsed(raw: bytes) -> dict[str, str]:
    """What a record keeps of a body that was not JSON."""
    return {"unparsed": raw[:65536].decode("utf-8", errors="replace")}


def validate(model: type[_M], body: dict[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = param_path(first["loc"])
        raise InvalidRequest(f"Invalid value for '{param}': {first['msg']}.", param=param) from exc


def param_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not _is_type_tag(item):
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def _is_type_tag(item: str) -> bool:
    # pydantic adds the union member it tried ("str", "list[...]") to the location.
    return item in {"str", "int", "bool", "none"} or item.startswith(("list[", "dict["))
