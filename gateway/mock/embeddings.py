"""POST /v1/embeddings for the mock upstream: deterministic unit vectors."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from typing import Any

from gateway.mock.asgi import BadRequest, dumps

# Two bytes of hash per dimension: enough resolution for a mock, cheap to unpack.
_BYTES_PER_DIM = 2
_HALF_RANGE = 65535 / 2


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def _inputs(raw: Any) -> list[tuple[str, int]]:
    """Each input as (text to hash, token count)."""
    if isinstance(raw, str):
        return [(raw, len(raw.split()))]
    if isinstance(raw, list) and raw:
        if _is_tokens(raw):
            return [(json.dumps(raw), len(raw))]
        if all(isinstance(item, str) for item in raw):
            return [(item, len(item.split())) for item in raw]
        if all(_is_tokens(item) for item in raw):
            return [(json.dumps(item), len(item)) for item in raw]
    raise BadRequest(
        "'input' must be a string, a list of strings, or a list of token arrays.",
        "input",
        "invalid_value",
    )


def vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from sha256(text); equal texts give equal vectors."""
    seed = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    needed = dimensions * _BYTES_PER_DIM
    # Counter-mode expansion so any number of dimensions stays a pure function of the seed.
    blocks = [seed]
    counter = 0
    while len(blocks) * len(seed) < needed:
        counter += 1
        blocks.append(hashlib.sha256(seed + counter.to_bytes(4, "little")).digest())
    raw = struct.unpack(f"<{dimensions}H", b"".join(blocks)[:needed])
    values = [v / _HALF_RANGE - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _encode(values: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
    return values


def _shape(body: dict[str, Any], default_dimensions: int) -> tuple[int, str]:
    """The vectors asked for: their dimensions and their encoding."""
    dimensions = body.get("dimensions", default_dimensions)
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= 65536
    ):
        raise BadRequest("'dimensions' must be a positive integer.", "dimensions", "invalid_value")
    encoding_format = body.get("encoding_format", "float")
    if encoding_format not in ("float", "base64"):
        raise BadRequest(
            "'encoding_format' must be 'float' or 'base64'.", "encoding_format", "invalid_value"
        )
    return dimensions, encoding_format


def embeddings_body(body: Any, default_dimensions: int) -> tuple[str, bytes]:
    """Validate an embeddings request; returns (model, response body)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(
            "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    if "input" not in body:
        raise BadRequest(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    inputs = _inputs(body["input"])
    dimensions, encoding_format = _shape(body, default_dimensions)
    tokens = sum(count for _, count in inputs)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode(vector(text, dimensions), encoding_format),
        }
        for i, (text, _) in enumerate(inputs)
    ]
    return model, dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
