"""A choice's text as the output stage reads it: appended in pieces, read near its end.

The stage scans a window behind the end of the text and releases what lies behind its hold-back,
so only a tail of the text is ever read again. ``StreamText`` keeps that tail (and forgets what
nobody reads any more), joining new pieces only when the tail is read: a piece costs its own
length plus the tail's, never the length of the text so far. ``Spans`` are the redactions not
yet released, kept sorted as they come.
"""

from __future__ import annotations

import bisect
import re

Span = tuple[int, int, str]  # begin, end, replacement

#: forget the text before the oldest position still read once it is at least this long
_FORGET_AT = 4096


class StreamText:
    __slots__ = ("_base", "_parts", "_tail", "size")

    def __init__(self, text: str = "") -> None:
        self.size = len(text)
        self._base = 0  # the offset of the tail's first character in the whole text
        self._tail = text
        self._parts: list[str] = []

    def append(self, text: str) -> None:
        self._parts.append(text)
        self.size += len(text)

    def read(self, start: int, end: int | None = None) -> str:
        """The text from ``start`` (never before what was forgotten) to ``end`` (the end)."""
        if self._parts:
            self._tail += "".join(self._parts)
            self._parts.clear()
        stop = self.size if end is None else end
        return self._tail[start - self._base : stop - self._base]

    def search(self, pattern: re.Pattern[str], start: int) -> bool:
        """Whether ``pattern`` occurs in the text from ``start`` on."""
        self.read(self.size)  # joins the new pieces
        return pattern.search(self._tail, max(0, start - self._base)) is not None

    def forgets(self, before: int) -> bool:
        """Whether ``forget(before)`` could drop anything (a cheap test before working out
        where the oldest reader is, which is never after ``before``)."""
        return before - self._base >= _FORGET_AT

    def forget(self, before: int) -> None:
        """Nothing before ``before`` is read again: drop it once that is worth a copy."""
        dead = before - self._base
        if dead >= _FORGET_AT and dead * 2 >= len(self._tail):
            self.read(self.size)
            self._tail = self._tail[dead:]
            self._base = before


class Spans:
    """Redactions not yet wholly released, sorted by where they begin."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: list[Span] = []

    def __bool__(self) -> bool:
        return bool(self._spans)

    def add(self, span: Span) -> None:
        bisect.insort(self._spans, span)

    def not_inside(self, end: int) -> int:
        """``end``, moved back to the start of any span it would cut in two."""
        for begin, stop, _ in reversed(self._spans):
            if begin < end < stop:
                end = begin
        return end

    def cut(self, text: StreamText, start: int, end: int) -> str:
        """The text from ``start`` to ``end`` with the spans in it replaced (overlapping spans
        as one, with the first one's replacement); a span that began before ``start`` (its head
        already sent) has its unsent rest replaced. Spans released for good are dropped."""
        if end <= start:
            return ""
        parts, cursor = [], start
        for begin, stop, replacement in self._spans:
            if begin >= end:
                break
            if begin < start:  # began in text already sent: the rest is never released
                if start < stop:
                    parts.append(replacement)
                    cursor = max(cursor, stop)
                continue
            if begin < cursor:  # overlaps the previous span: already covered
                cursor = max(cursor, stop)
                continue
            parts.append(text.read(cursor, begin))
            parts.append(replacement)
            cursor = stop
        if cursor < end:
            parts.append(text.read(cursor, end))
        del self._spans[: bisect.bisect_left(self._spans, (end,))]
        return "".join(parts)
