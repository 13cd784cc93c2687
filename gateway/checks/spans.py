"""Replacing a detector's spans in the text they were found in.

It lives with the detectors, at the bottom of the layers, because both sides need it: the
policy's redactions and the records' redacted views above, and the guardrails validators here.
"""

from __future__ import annotations


def redact(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace spans (merged where they overlap: the first one's replacement stands for the
    union) in one pass, so the cost is linear in the text whatever the number of spans."""
    merged: list[tuple[int, int, str]] = []
    for start, end, replacement in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, replacement))
    parts: list[str] = []
    position = 0
    for start, end, replacement in merged:
        parts += (text[position:start], replacement)
        position = end
    parts.append(text[position:])
    return "".join(parts)
