"""The decoder: encoded blobs in a prompt (base64, hex, percent-encoding, binary, escapes) and
their decoded text, bounded by depth and by bytes.

An instruction the model is asked to decode and follow ("eval atob aWdub3JlIHJ1bGVz…") hides
from every pattern that reads the text as written; decoding the blob lets the same patterns
read it. Only blobs that decode to mostly printable UTF-8 are returned. A decoded text is
decoded again (base64 inside hex, say) down to ``MAX_DEPTH`` layers, and one text's blobs
are decoded up to ``MAX_DECODED`` characters in all, so a request cannot buy unbounded work.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Callable, Iterator

_BASE64 = re.compile(r"(?<![\w+/=-])[a-z0-9+/_-]{24,}={0,2}(?![\w+/=-])", re.IGNORECASE)
_HEX = re.compile(r"(?<![\w])(?:0x)?((?:[0-9a-f]{2}[ :\\x]{0,2}){12,})(?![\w])", re.IGNORECASE)
_HEX_SEPARATORS = re.compile(r"[ :\\x]")
_PERCENT = re.compile(r"(?:%[0-9a-f]{2}){8,}", re.IGNORECASE)
_BINARY = re.compile(r"(?<![\w])(?:[01]{8}[ ]?){4,}(?![\w])")
_ESCAPES = re.compile(r"(?:\\u[0-9a-f]{4}|\\x[0-9a-f]{2}){4,}", re.IGNORECASE)
_MIN_PRINTABLE = 0.9
#: the longest blob a stream holds back for (a finding covers its whole blob); inputs and
#: whole answers read longer blobs, up to the budget below
MAX_BLOB = 1000
#: encoded layers decoded at most (base64 of hex of the payload is two)
MAX_DEPTH = 3
#: characters of blobs one text may have decoded, all layers together
MAX_DECODED = 64_000


def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded:
        return None
    printable = sum(char.isprintable() or char.isspace() for char in decoded)
    return decoded if printable / len(decoded) >= _MIN_PRINTABLE else None


def _base64(blob: str) -> str | None:
    bare = blob.rstrip("=")
    padded = bare + "=" * (-len(bare) % 4)
    decoder = base64.urlsafe_b64decode if "-" in blob or "_" in blob else base64.b64decode
    try:
        return _printable(decoder(padded))
    except (binascii.Error, ValueError):
        return None


def _hex(blob: str) -> str | None:
    try:
        return _printable(bytes.fromhex(_HEX_SEPARATORS.sub("", blob)))
    except ValueError:
        return None


def _percent(blob: str) -> str | None:
    return _printable(urllib.parse.unquote_to_bytes(blob))


def _binary(blob: str) -> str | None:
    bits = blob.replace(" ", "")
    return _printable(bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8)))


def _escapes(blob: str) -> str | None:
    codes = [int(code, 16) for code in re.findall(r"[0-9a-f]{2,4}", blob, re.IGNORECASE)]
    decoded = "".join(chr(code) for code in codes)
    return _printable(decoded.encode("utf-8", "replace"))


_DECODERS: tuple[tuple[re.Pattern[str], int, Callable[[str], str | None]], ...] = (
    (_BASE64, 0, _base64),
    (_HEX, 1, _hex),
    (_PERCENT, 0, _percent),
    (_BINARY, 0, _binary),
    (_ESCAPES, 0, _escapes),
)


class _Budget:
    """Characters of blobs still to decode; charged before a blob is decoded, never after."""

    def __init__(self, characters: int) -> None:
        self.left = characters

    def take(self, blob: str) -> str:
        """As much of ``blob`` as the budget allows, whole 4-character groups (base64's
        quantum, and whole hex bytes), so a blob longer than the budget still has its head
        decoded; empty once the budget is spent."""
        size = min(len(blob), self.left) // 4 * 4 if len(blob) > self.left else len(blob)
        self.left -= size
        return blob[:size]


def _layer(text: str, budget: _Budget) -> Iterator[tuple[int, int, str]]:
    for pattern, group, decode in _DECODERS:
        for match in pattern.finditer(text):
            blob = budget.take(match.group(group))
            if not blob:
                return
            decoded = decode(blob)
            if decoded is not None:
                yield *match.span(group), decoded


def decoded_blobs(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, decoded text)`` for each blob in ``text`` that decodes to text, and for
    each blob inside a decoded text (at the outer blob's span), down to ``MAX_DEPTH`` layers
    and ``MAX_DECODED`` characters of blobs in all (a blob past the budget has its head
    decoded, up to what is left)."""
    budget = _Budget(MAX_DECODED)
    pending = [(0, len(text), text, 0)]
    while pending:
        outer_start, outer_end, layer, depth = pending.pop()
        for start, end, decoded in _layer(layer, budget):
            span = (start, end) if depth == 0 else (outer_start, outer_end)
            yield *span, decoded
            if depth + 1 < MAX_DEPTH:
                pending.append((*span, decoded, depth + 1))
