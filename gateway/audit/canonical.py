"""RFC 8785 (the JSON Canonicalization Scheme) bytes of a JSON value: what the chain hashes.

JCS sorts object keys by their UTF-16 code units, writes strings with the fewest escapes and
numbers as ECMAScript prints an IEEE 754 double. ``json.dumps`` with sorted keys and no
whitespace writes the very same bytes when every key is ASCII (code point order is UTF-16
order there), every integer is one a double holds exactly, and every float is one whose
shortest form is positional in both languages and has a fractional part (Python writes
``1.0`` and ``1e16`` where ECMAScript writes ``1`` and ``10000000000000000``). That is the
common case, a C-speed encode after one walk; any other value goes through ``rfc8785``.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from gateway.db.safe_json import clean

#: the integers a double holds exactly (JCS refuses the others)
SAFE_INT = 2**53 - 1
_SMALL, _LARGE = 1e-4, 1e16


def _plain_float(value: float) -> bool:
    size = abs(value)
    return _SMALL <= size < _LARGE and not value.is_integer()


def _fast(value: Any) -> bool:
    """Whether ``json.dumps`` writes ``value`` exactly as JCS does."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) or item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if -SAFE_INT <= item <= SAFE_INT:
                continue
            return False
        if isinstance(item, float):
            if _plain_float(item):
                continue
            return False
        if isinstance(item, dict):
            if not all(isinstance(key, str) and key.isascii() for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            return False
    return True


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value``; raises ``rfc8785.CanonicalizationError`` (a
    ``ValueError``) for what JCS cannot write (NaN, infinities, an integer beyond 2**53,
    a lone surrogate, a key that is not a string)."""
    if _fast(value):
        try:
            text = json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 says so
            pass
    return rfc8785.dumps(value)


def _number(value: int) -> float | str:
    try:
        return float(value)
    except OverflowError:
        return "Infinity" if value > 0 else "-Infinity"


def json_value(value: Any) -> Any:
    """``value`` as a database gives it back, in the domain JCS writes: what the chain commits
    to, so a row written and read back commits the same.

    Text and non-finite numbers are normalised as ``gateway.db.safe_json`` stores them, and an
    integer beyond 2**53 becomes the double JCS reads every JSON number as (PostgreSQL's jsonb
    gives a float such as 1e20 back as the integer 100000000000000000000; both are that
    double). Tuples are lists, as JSON has them."""
    value = clean(value)
    if not _has_big_int(value):
        return value
    return _doubles(value)


def _has_big_int(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -SAFE_INT <= item <= SAFE_INT:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _doubles(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -SAFE_INT <= value <= SAFE_INT:
        return _number(value)
    if isinstance(value, dict):
        return {key: _doubles(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_doubles(item) for item in value]
    return value
