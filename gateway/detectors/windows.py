"""A long text as short windows, for a model that looks for one sentence planted in it.

An injection inside a fetched e-mail or web page is one or two sentences among many: a score
of the whole text dilutes it. A windowed model scores each window and keeps the highest. The
windows are the text's lines and sentences; a text with more than ``cap`` of them is cut into
``cap`` runs of consecutive sentences instead, so the work per text is bounded by the cap
(whatever the text's length, within the classifier's ``window`` of characters) and every part
of the text is read.
"""

from __future__ import annotations

import re

#: a sentence ends at ., ! or ? followed by whitespace, or at a line break
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
#: a fragment shorter than this joins the sentence before it (a greeting, a signature line)
MIN_CHARS = 12


def sentences(text: str) -> list[str]:
    """The text's lines and sentences, stripped; short fragments join their neighbour."""
    out: list[str] = []
    for piece in _BOUNDARY.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if out and (len(piece) < MIN_CHARS or len(out[-1]) < MIN_CHARS):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def windows(text: str, cap: int) -> list[str]:
    """At most ``cap`` windows covering the text: its sentences, or runs of them."""
    parts = sentences(text) or [text]
    if len(parts) <= cap:
        return parts
    size = -(-len(parts) // cap)  # ceiling: at most ``cap`` runs
    return [" ".join(parts[i : i + size]) for i in range(0, len(parts), size)]
