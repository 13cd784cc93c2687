"""RFC 8785 (the JSON Canonicalization Scheme) bytes of a JSON value: what the chain hashes.

JCS sorts object keys by their UTF-16 code units, writes strings with the fewest escapes and
numbers as ECMAScript prints an IEEE 754 double. ``json.dumps`` with sorted keys and no
whitespace writes the very same bytes when every key is ASCII (code point order is UTF-16
order there), every integer is one a double holds exactly, and every float is one whose
shortest form is positional in both languages and has a fractional part (Python writes
``1.0`` and ``1e16`` where ECMAScript writes ``1`` and ``10000000000000000``); an integral
float within 2**53 is written as the int it equals, as ECMAScript does. That is the common
case, a C-speed encode after one walk; any other value goes through ``rfc8785``.

Before that walk, an object or array is tried without one (``_orjson``): orjson writes sorted
keys, no whitespace and every string exactly as ``json.dumps`` does (checked for every code
point), and every float of that domain as Python does. What it would write differently shows
in its bytes or in reading them back: a non-finite float becomes ``null`` (read back, not
equal), an integral float ends ``.0``, a float outside the domain has an exponent or starts
``0.0000``, a key may sort otherwise in UTF-16 only with a character from U+E000 up (UTF-8
lead bytes 0xEE to 0xF4), NUL is ``\\u0000``, and an integer past 2**53 (``OPT_STRICT_INTEGER``),
a lone surrogate, a key not text or a type JSON has not makes it raise. Those go the walk's
way (a string that merely looks like one of them too); the rest is the walk's bytes, in a
tenth of the time.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import rfc8785

from gateway.db.safe_json import clean

#: the integers a double holds exactly (JCS refuses the others)
SAFE_INT = 2**53 - 1
_SMALL, _LARGE = 1e-4, 1e16


_AS_IS, _INTEGRAL, _SLOW = 0, 1, 2


def _float_kind(value: float) -> int:
    size = abs(value)
    if value.is_integer():  # JCS writes 1.0 as 1: so does json.dumps, given the int
        return _INTEGRAL if size <= SAFE_INT else _SLOW
    return _AS_IS if _SMALL <= size < _LARGE else _SLOW


def _scalar_kind(item: Any, text: bool) -> int:
    if isinstance(item, str):
        return _SLOW if text and "\x00" in item else _AS_IS
    if item is None or isinstance(item, bool):
        return _AS_IS
    if isinstance(item, int):
        return _AS_IS if -SAFE_INT <= item <= SAFE_INT else _SLOW
    if isinstance(item, float):
        return _float_kind(item)
    return _SLOW


def _plain_keys(item: dict[Any, Any], text: bool) -> bool:
    return all(
        isinstance(key, str) and key.isascii() and not (text and "\x00" in key) for key in item
    )


def _scan(value: Any, *, text: bool) -> int:
    """How ``json.dumps`` can write ``value`` as JCS does: as it is, with its integral floats
    made ints, or not at all. With ``text``, text that ``json_value`` would change (a NUL)
    makes it the slow path too."""
    kind = _AS_IS
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not _plain_keys(item, text):
                return _SLOW
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            kind = max(kind, _scalar_kind(item, text))
            if kind == _SLOW:
                return _SLOW
    return kind


#: an integral float's ``.0`` (or text that looks like one); an exponent, in a number token
_POINT_ZERO = re.compile(rb"\.0[,\]}]")
_EXPONENT = re.compile(rb"[:,\[]-?\d+(?:\.\d+)?e[-+]")
#: the bytes ``translate`` drops to leave UTF-8 lead bytes of U+E000 and up
_BELOW_E000 = bytes(range(0xEE))


def _suspect(written: bytes) -> bool:
    """Whether orjson's bytes may not be JCS's: literal checks first, each a C-speed scan."""
    if b"\\u0000" in written or b"0.0000" in written or _POINT_ZERO.search(written):
        return True
    if (b"e+" in written or b"e-" in written) and _EXPONENT.search(written):
        return True
    return not written.isascii() and bool(written.translate(None, _BELOW_E000))


def _orjson(value: Any) -> bytes | None:
    """The JCS bytes of an object or array when orjson provably writes them; None when the
    walk must decide (a scalar, or anything ``_suspect`` or the read back questions)."""
    if not isinstance(value, dict | list):
        return None
    try:
        written = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        return None
    if _suspect(written) or orjson.loads(written) != value:
        return None
    return written


def _integral(value: Any) -> Any:
    """``value`` with its integral floats as ints (all within 2**53: ``_scan`` said so)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(item) for item in value]
    return value


def _dumps(value: Any, kind: int) -> bytes | None:
    """The fast path's bytes; None when a lone surrogate is in the text."""
    try:
        text = json.dumps(
            value if kind == _AS_IS else _integral(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _fast(value: Any, *, text: bool) -> bytes | None:
    """The JCS bytes by orjson or by the walk and ``json.dumps``; None when neither can
    vouch for them. With ``text``, only where ``json_value`` changes nothing (orjson's NUL
    is suspect, and cleaning changes nothing else it passes)."""
    written = _orjson(value)
    if written is not None:
        return written
    kind = _scan(value, text=text)
    return None if kind == _SLOW else _dumps(value, kind)


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of ``value``; raises ``rfc8785.CanonicalizationError`` (a
    ``ValueError``) for what JCS cannot write (NaN, infinities, an integer beyond 2**53,
    a lone surrogate, a key that is not a string)."""
    written = _fast(value, text=False)
    return rfc8785.dumps(value) if written is None else written


def stored_canonical(value: Any) -> bytes:
    """``canonical(json_value(value))``, in one walk of the value when nothing in it needs
    normalising (the common case): what content commitments hash."""
    written = _fast(value, text=True)
    return canonical(json_value(value)) if written is None else written


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
    double). Tuples are lists, as JSON has them. An object or array orjson writes as JCS does
    is that already (no NUL, lone surrogate, non-finite number, big integer or tuple passes
    ``_orjson``): it is given back as it is, without a walk."""
    if _orjson(value) is not None:
        return value
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
