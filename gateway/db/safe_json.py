"""JSON every database takes: what a client may send but PostgreSQL's jsonb (or its text)
refuses is stored normalised instead of refusing the row.

A request body may hold numbers Python's ``json.loads`` turns into floats no JSON document
allows (``1e400`` is ``inf``; ``NaN``, ``Infinity``, ``-Infinity``), a lone UTF-16 surrogate
(``"\\ud800"``) that no UTF-8 text can hold, or a NUL character, which PostgreSQL's text and
jsonb refuse. They are stored as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``,
and as U+FFFD (the replacement character) respectively, on every dialect alike, so a record
reads the same wherever it was written. ``dumps`` is the engine's JSON serializer: the common
case costs one C-speed encode and one check; only a document that needs it is walked.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

REPLACEMENT = "\ufffd"
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str) -> str:
    """The text with NUL and lone surrogates replaced by U+FFFD (a Python str holds a valid
    pair as one character, so every surrogate left in it is a lone one)."""
    if "\x00" not in value and value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _BAD_CHARS.sub(REPLACEMENT, value)
    return value.replace("\x00", REPLACEMENT)


def _number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def clean(value: Any) -> Any:
    """The JSON value with non-finite numbers as strings and its text (keys included) clean."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {
            clean_text(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _needs_cleaning(text: str) -> bool:
    if "\x00" in text or "\\u0000" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def dumps(value: Any) -> str:
    """``value`` as a JSON document PostgreSQL's jsonb and SQLite both store as it reads."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError:  # a non-finite number
        return json.dumps(clean(value), allow_nan=False, ensure_ascii=False)
    if _needs_cleaning(text):
        return json.dumps(clean(value), allow_nan=False, ensure_ascii=False)
    return text
