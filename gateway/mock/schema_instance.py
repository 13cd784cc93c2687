"""A minimal, deterministic instance of a JSON Schema: the mock's tool arguments and its
structured output (`response_format` json_schema, Responses `text.format`).

Covers what tool and structured-output schemas use (pydantic's among them): objects,
arrays, strings (enum, const, formats, lengths, simple patterns), numbers within their
bounds, booleans, null, anyOf/oneOf/allOf and `$ref` into `$defs`/`definitions`.
"""

from __future__ import annotations

import math
import re
from typing import Any

_MAX_DEPTH = 12
_SHALLOW = 4  # below this depth an array with no minItems is empty (a recursive model ends)
_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}


def instance(schema: Any, text: str = "", *, strict: bool = False) -> Any:
    """A value valid against ``schema``; strings come from ``text`` where nothing says more.

    ``strict`` (OpenAI's strict function / structured output) gives every property of an
    object, not only the required ones.
    """
    return _Generator(schema, text, strict).value(schema, 0)


class _Generator:
    def __init__(self, root: Any, text: str, strict: bool) -> None:
        self._root = root if isinstance(root, dict) else {}
        self._text = " ".join(text.split())[:64] or "text"
        self._strict = strict

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict):
            return None  # `true` or nothing: anything goes, null is the shortest
        schema = self._resolved(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.value(_merged(schema, options[0], key), depth + 1)
        return self._typed(schema, _type_of(schema), depth)

    def _resolved(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        while isinstance(schema.get("$ref"), str) and depth < _MAX_DEPTH:
            target = self._lookup(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest}
            depth += 1
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if isinstance(part, dict):
                    merged = _deep_merge(merged, self._resolved(part, depth + 1))
            schema = merged
        return schema

    def _lookup(self, ref: str) -> dict[str, Any]:
        node: Any = self._root
        if not ref.startswith("#"):
            return {}
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def _typed(self, schema: dict[str, Any], kind: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            return _number(schema, kind == "integer")
        if kind == "boolean":
            return True
        return None

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        if self._strict and depth < _MAX_DEPTH:
            names += [n for n in properties if n not in names]
        minimum = schema.get("minProperties")
        if isinstance(minimum, int) and len(names) < minimum:
            names += [n for n in properties if n not in names][: minimum - len(names)]
        return {name: self.value(properties.get(name, {}), depth + 1) for name in names}

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items: list[Any] = (
            [self.value(s, depth + 1) for s in prefix] if isinstance(prefix, list) else []
        )
        least = schema.get("minItems")
        count = least if isinstance(least, int) else (1 if depth < _SHALLOW else 0)
        most = schema.get("maxItems")
        if isinstance(most, int):
            count = min(count, most)
        if schema.get("uniqueItems") is True:
            count = min(count, 1)
        element = schema.get("items", {})
        while len(items) < count:
            items.append(self.value(element, depth + 1))
        return items

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        value = _FORMATS.get(fmt, self._text) if isinstance(fmt, str) else self._text
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            value = _for_pattern(pattern, value)
        least, most = schema.get("minLength"), schema.get("maxLength")
        if isinstance(least, int) and len(value) < least:
            value = value + "x" * (least - len(value))
        if isinstance(most, int) and len(value) > most:
            value = value[:most]
        return value


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        kind = next((k for k in kinds if k != "null"), kinds[0] if kinds else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "null"


def _merged(parent: dict[str, Any], option: Any, key: str) -> Any:
    """An option of an anyOf/oneOf with the parent's own keywords (its $defs stay at the root)."""
    if not isinstance(option, dict):
        return option
    rest = {k: v for k, v in parent.items() if k not in (key, "$defs", "definitions")}
    return {**rest, **option}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "required" and isinstance(merged.get(key), list) and isinstance(value, list):
            merged[key] = [*merged[key], *(v for v in value if v not in merged[key])]
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _for_pattern(pattern: str, fallback: str) -> str:
    """A string matching ``pattern``: the fallback if it matches already, else one made from
    a simple pattern (literals, classes, \\d \\w \\s, counted repeats); the fallback as it
    is when the pattern is not simple (groups, alternation)."""
    try:
        if re.search(pattern, fallback):
            return fallback
        made = _from_regex(pattern)
        return made if made is not None and re.search(pattern, made) else fallback
    except re.error:
        return fallback


_ESCAPES = {"d": "0", "w": "a", "s": " ", "D": "a", "W": "-", "S": "a"}
_REPEAT = re.compile(r"\{(\d+)(,\d*)?\}|[+*?]")


def _from_regex(pattern: str) -> str | None:
    body = pattern.removeprefix("^").removesuffix("$")
    out: list[str] = []
    at = 0
    while at < len(body):
        char, at = _atom(body, at)
        if char is None:
            return None
        repeat = _REPEAT.match(body, at)
        count = 1
        if repeat is not None:
            at = repeat.end()
            sign = repeat.group(0)
            count = int(repeat.group(1)) if repeat.group(1) else (1 if sign == "+" else 0)
        out.append(char * count)
    return "".join(out)


def _atom(body: str, at: int) -> tuple[str | None, int]:
    """One character standing for the atom at ``at`` (None: not simple), and what follows."""
    char = body[at]
    if char == "\\" and at + 1 < len(body):
        escaped = body[at + 1]
        return _ESCAPES.get(escaped, escaped if not escaped.isalnum() else None), at + 2
    if char == "[":
        end = body.find("]", at + 2)
        inside = body[at + 1 : end] if end > 0 else ""
        if not inside or inside.startswith("^"):
            return None, at
        first = inside[0]
        if first == "\\" and len(inside) > 1:
            return _ESCAPES.get(inside[1], inside[1]), end + 1
        return first, end + 1
    if char == ".":
        return "a", at + 1
    if char in "()|{}*+?^$":
        return None, at
    return char, at + 1


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
    step = schema.get("multipleOf")
    step = step if isinstance(step, (int, float)) and step > 0 else (1 if integer else None)
    value: float = 0.0
    if low is not None and (value < low or (low_open and value <= low)):
        value = low
    if high is not None and (value > high or (high_open and value >= high)):
        value = high
    if step is not None:
        value = _stepped(value, step, low, low_open, high, high_open)
    elif low_open and value == low:
        value = low + 1 if high is None or low + 1 < high else (low + high) / 2
    elif high_open and value == high:
        value = high - 1 if low is None or high - 1 > low else (low + high) / 2
    return int(value) if integer else value


def _bound(schema: dict[str, Any], closed: str, opened: str) -> tuple[float | None, bool]:
    exclusive = schema.get(opened)
    if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
        return float(exclusive), True
    inclusive = schema.get(closed)
    if isinstance(inclusive, (int, float)) and not isinstance(inclusive, bool):
        return float(inclusive), bool(exclusive is True)  # draft 4's boolean form
    return None, False


def _stepped(
    value: float,
    step: float,
    low: float | None,
    low_open: bool,
    high: float | None,
    high_open: bool,
) -> float:
    """The multiple of ``step`` nearest ``value`` inside the bounds (rising from below)."""
    candidate = math.ceil(value / step) * step
    if low is not None and (candidate < low or (low_open and candidate <= low)):
        candidate += step
    if high is not None and (candidate > high or (high_open and candidate >= high)):
        candidate = math.floor(high / step) * step
        if high_open and candidate >= high:
            candidate -= step
    return float(round(candidate, 12))
