"""Reading a request body: the fields the gateway uses are validated, the rest pass through.

Refused at the door, each a 400 in OpenAI's error shape (and recorded): a body that is not
UTF-8 (``invalid_utf8``), not JSON or not an object, JSON nested deeper than the config's
``max_json_depth`` (``json_too_deep``: measured before anything walks the body, so no later
copy or walk can recurse too far), and a number JSON cannot carry (``NaN``, ``Infinity``, or a
literal too large for a double, such as ``1e400``: ``invalid_number``). The fields the gateway
reads are validated strictly (no ``"2"`` for ``n``, no ``1`` for ``stream``): the value the
gateway judges is the value that goes upstream.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from starlette.requests import ClientDisconnect, Request

from gateway.errors import ClientGone, InvalidRequest

_M = TypeVar("_M", bound=BaseModel)

#: a JSON string (escapes included): what the depth count skips, since brackets in it are text
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]+")
_FINITE = Annotated[StrictFloat, Field(allow_inf_nan=False)]  # an int is a number too


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatRequest(_Open):
    model: StrictStr | None = Field(None, min_length=1, description="else the context's default")
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(None, ge=1, le=128)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    # not judged by the gateway, but the backend must get a number: OpenAI's ranges
    temperature: _FINITE | None = Field(None, ge=0, le=2)
    top_p: _FINITE | None = Field(None, ge=0, le=1)
    presence_penalty: _FINITE | None = Field(None, ge=-2, le=2)
    frequency_penalty: _FINITE | None = Field(None, ge=-2, le=2)
    seed: StrictInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, ge=0, le=20)

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class EmbeddingsRequest(_Open):
    model: StrictStr | None = Field(None, min_length=1, description="else the context's default")
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    dimensions: StrictInt | None = Field(None, ge=1)


async def read_json(request: Request, *, max_depth: int = 100) -> dict[str, Any]:
    try:
        raw = await request.body()
    except ClientDisconnect as exc:  # the client went away before its body had arrived
        raise ClientGone("The client disconnected while sending its request.") from exc
    return parse_json(raw, max_depth=max_depth)


def parse_json(raw: bytes, *, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object, or the 400 that says what is wrong with it."""
    text = _utf8(raw)
    if nests_deeper(text, max_depth):
        raise _too_deep(max_depth)
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError as exc:  # the depth count missed it: never a 500
        raise _too_deep(max_depth) from exc
    except _NotFinite as exc:
        raise InvalidRequest(
            f"The request body holds a number JSON cannot carry ({exc}): send finite numbers.",
            code="invalid_number",
        ) from exc
    except ValueError as exc:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. Send a JSON object "
            f"with 'Content-Type: application/json' ({exc})."
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def nests_deeper(text: str, limit: int) -> bool:
    """Whether ``text``'s arrays and objects nest more than ``limit`` deep, counted without
    recursion and at C speed (a 4 MB body of brackets in milliseconds). Brackets inside
    strings are skipped; on a body that is not JSON the answer may be either, and the parser's
    own error follows."""
    if text.count("[") + text.count("{") <= limit:
        return False  # too few openings to nest that deep: the common case
    brackets = "".join(_BRACKETS.findall(_STRING.sub("", text))).encode("ascii")
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = ((codes == _OPEN) | (codes == _OPEN_OBJECT)).astype(np.int32) * 2 - 1
    return bool(steps.size) and int(steps.cumsum().max()) > limit


_OPEN, _OPEN_OBJECT = ord("["), ord("{")


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(literal[:40])
    return value


def _utf8(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid UTF-8 (byte {exc.start}): send JSON encoded as "
            "UTF-8.",
            code="invalid_utf8",
        ) from exc
    return text.removeprefix("\ufeff")


def _too_deep(max_depth: int) -> InvalidRequest:
    return InvalidRequest(
        f"The request body's JSON nests deeper than this deployment allows ({max_depth} "
        "levels of arrays and objects).",
        code="json_too_deep",
    )


def unparsed(raw: bytes) -> dict[str, str]:
    """What a record keeps of a body that was not JSON."""
    return {"unparsed": raw[:65536].decode("utf-8", errors="replace")}


def validate(model: type[_M], body: dict[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = param_path(first["loc"])
        kind = str(first["type"])
        if kind == "missing":
            message, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
        else:
            message = f"Invalid value for '{param}': {first['msg']}."
            code = "invalid_type" if kind.endswith("_type") else "invalid_value"
        raise InvalidRequest(message, param=param, code=code) from exc


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
