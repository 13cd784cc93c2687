"""Releasing a slice of held-back text with its redactions applied."""

from __future__ import annotations


def apply_spans(raw: str, start: int, end: int, spans: dict[tuple[int, int], str]) -> str:
    """``raw[start:end]`` with every span that begins inside it replaced; a span that began
    before ``start`` (its head already sent) has its unsent rest replaced."""
    if end <= start:
        return ""
    parts, cursor = [], start
    for (begin, stop), replacement in sorted(spans.items()):
        if begin < start < stop:  # began in text already sent: the rest is never released
            parts.append(replacement)
            cursor = max(cursor, stop)
            continue
        if begin < start or begin >= end:
            continue
        if begin < cursor:  # overlaps the previous span: already covered
            cursor = max(cursor, stop)
            continue
        parts.append(raw[cursor:begin])
        parts.append(replacement)
        cursor = stop
    if cursor < end:
        parts.append(raw[cursor:end])
    return "".join(parts)
