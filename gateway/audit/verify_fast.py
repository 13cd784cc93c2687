"""The verifier's fast path: an exchange's leaf rebuilt with one C-speed encode per value.

``exchange_body`` and ``leaf_text`` walk every value three times (cleaning, big integers,
whether ``json.dumps`` writes what RFC 8785 does) before encoding it. Over a million records
that is most of the time. Here the JSON columns arrive as the text the database stores, and
cheap tests on that text establish the same facts: no ``\\u`` escape (so no NUL and no lone
surrogate in any string), no integer of 16 digits or more and every float one JCS writes as
Python does (both checked as the parser meets them), no NaN or Infinity, every key ASCII.
When they hold, cleaning changes nothing and ``canonical`` is ``json.dumps`` with sorted
keys (written here by orjson, the same bytes there), so the leaf built here is byte for byte
the one the chain built; when any fails, ``None`` sends the entry to the exact path (the
chain's own functions). A leaf built here can only fail to match where the exact path fails
too: both encodings are lossless, so equal bytes mean equal values, and the fast path never
passes what the exact one would not.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from gateway.audit.canonical import SAFE_INT
from gateway.audit.leaf import EXCHANGE_FIELDS, FINDING_FIELDS, LEAF_VERSION, iso

#: the JSON columns, read as text
JSON_COLUMNS = ("request_body", "response_body", "decision", "attempts")
_INTS = ("http_status", "prompt_tokens", "completion_tokens", "total_tokens")
_SMALL, _LARGE = 1e-4, 1e16


class _NotPlain(Exception):
    pass


def _float(text: str) -> float:
    value = float(text)
    if not (_SMALL <= abs(value) < _LARGE) or value.is_integer():
        raise _NotPlain
    return value


def _int(text: str) -> int:
    if len(text) > 15:  # maybe beyond 2**53: the exact path decides
        raise _NotPlain
    return int(text)


def _constant(text: str) -> Any:
    raise _NotPlain


def _ascii_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if not all(key.isascii() for key, _ in pairs):
        raise _NotPlain
    return dict(pairs)


#: built once: ``json.loads`` with options builds a decoder on every call
_PLAIN = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_constant)
_PLAIN_KEYS = json.JSONDecoder(
    parse_float=_float, parse_int=_int, parse_constant=_constant, object_pairs_hook=_ascii_keys
)


def plain_json(text: str | None) -> tuple[bool, Any]:
    """(True, the value) when the stored JSON text is in the domain where canonical JSON is
    ``json.dumps``; (False, None) otherwise."""
    if text is None:
        return True, None
    if "\\u" in text:
        return False, None
    try:
        return True, (_PLAIN if text.isascii() else _PLAIN_KEYS).decode(text)
    except (_NotPlain, ValueError, RecursionError):
        return False, None


def _dumps(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 as it is: in the plain domain, what ``json.dumps``
    writes for ``canonical``, five to ten times faster. A value where the two would differ
    cannot pass for another: both are lossless there, so equal bytes mean equal values."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _commit(key: bytes, value: Any) -> str | None:
    if value is None:
        return None
    return hmac.digest(key, _dumps(value), "sha256").hex()


def fast_leaf(chain_id: str, seq: int, prev: str, row: Mapping[str, Any],
              findings: Sequence[Mapping[str, Any]], key: bytes) -> bytes | None:
    """The exchange's leaf from its row (JSON columns as text, under ``raw_<column>``), or
    None when the fast path cannot vouch for it."""
    values = {}
    for column in JSON_COLUMNS:
        plain, value = plain_json(row[f"raw_{column}"])
        if not plain:
            return None
        values[column] = value
    for name in _INTS:
        number = row[name]
        if number is not None and not -SAFE_INT <= number <= SAFE_INT:
            return None
    body: dict[str, Any] = {}
    for name in EXCHANGE_FIELDS:
        value = values[name] if name == "attempts" else row[name]
        if isinstance(value, datetime):
            value = iso(value)
        elif name == "cost" and value is not None:
            value = repr(float(value))
        body[name] = value
    listed = [[f[name] for name in FINDING_FIELDS] for f in findings]
    body["findings"] = sorted(listed, key=lambda item: [str(part) for part in item])
    body["commit"] = {
        "request": _commit(key, values["request_body"]),
        "response": _commit(key, values["response_body"]),
        "decision": _commit(key, values["decision"]),
    }
    leaf = {"v": LEAF_VERSION, "chain": chain_id, "seq": seq, "prev": prev,
            "kind": "exchange", "body": body}
    try:
        return _dumps(leaf)
    except (UnicodeEncodeError, ValueError, TypeError):
        return None
