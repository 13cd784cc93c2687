"""When an output rule reads a choice's text, and which of its findings it takes then: the
schedule of the output stage (``gateway.pipeline.output``).

A rule reads from ``max_span`` characters before where its last scan ended, so no match up to
that long is missed, and it reads again once the text it has not read grew past its *lag*:

- an enforced light (pattern) block or redact: once its unread text could reach into what the
  hold-back releases next, and, when the hold-back covers its span, by a further quarter of
  the hold-back (``QUANTUM``): the release then waits for its scan, so text goes out in steps
  of about that size rather than a piece at a time, and a piece costs a fraction of the span
  to scan, not the whole span (a rule longer than the hold-back reads every piece, as a
  shorter hold-back lets its match's head out anyway);
- a heavy (model) rule: a step of ``STREAM_STEP`` characters, or of ``STREAM_SENTENCE_STEP``
  that ends a sentence; the release waits for an enforced block's or redaction's scan;
- any other light rule (a flag, a warning, a shadow rule) changes nothing released, so it
  reads ``IDLE_STEP`` characters (or its span) at a time.

A light rule's finding that more text could still grow (it begins within a span of the end)
waits for the next scan, which reaches back to it, unless the text ended; one the last scan
settled is not taken again: found before, or an artefact of where the window starts. So a
stream's findings are those of the whole text, however it came in pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.pipeline.stream_text import StreamText
from gateway.policy.compiled import STREAM_SENTENCE_STEP, STREAM_STEP, CompiledRule, is_heavy

_SENTENCE_END = re.compile(r"[.!?\n\u3002\uff01\uff1f]")
#: how much new text a light rule that changes nothing released reads at a time, at least
IDLE_STEP = 1000
#: the share of the hold-back an enforced light rule's scan may lag by, beyond its spare
QUANTUM = 4


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """One output rule and when it scans."""

    rule: CompiledRule
    id: str
    span: int
    heavy: bool
    enforced: bool  # an enforced block or redact: its findings change what is released
    #: how much unread text the rule leaves before it scans again
    lag: int
    #: a light rule whose findings near the end may wait for more text: one that changes
    #: nothing released, or whose span the hold-back covers
    settles: bool

    @classmethod
    def of(cls, rule: CompiledRule, hold: int) -> ScanPlan:
        span = rule.check.max_span
        enforced = rule.spec.mode != "shadow" and rule.spec.action in ("block", "redact")
        heavy = is_heavy(rule.check)
        if heavy:
            lag = STREAM_STEP - 1
        elif not enforced:
            lag = max(span, IDLE_STEP)
        else:
            lag = hold - span + hold // QUANTUM if span <= hold else 0
        settles = not heavy and (not enforced or span <= hold)
        return cls(rule, rule.id, span, heavy, enforced, lag, settles)

    @property
    def gates(self) -> bool:
        """Whether the release waits for the rule's scan: an enforced heavy block or redact."""
        return self.heavy and self.enforced

    @property
    def bounds(self) -> bool:
        """Whether the release stops where a match the rule has not read yet could begin: an
        enforced light rule whose scan lags by a quantum."""
        return self.enforced and self.settles

    def due(self, text: StreamText, last: int, *, waiting: bool, final: bool) -> bool:
        """Whether the rule scans now, having last scanned the text at length ``last``: at the
        end whatever it has not read (or findings ``waiting`` to settle), else once its unread
        text exceeds its lag (or a model's shorter step ends a sentence)."""
        grown = text.size - last
        if final:
            return grown > 0 or waiting
        if grown > self.lag:
            return True
        return (
            self.heavy
            and grown >= STREAM_SENTENCE_STEP
            and text.search(_SENTENCE_END, last + STREAM_SENTENCE_STEP - 1)
        )

    def due_with(self, text: StreamText, last: int, piece: str, *, final: bool) -> bool:
        """Whether ``due`` will say yes once ``piece`` is appended to ``text`` (for a rule
        whose findings never wait), without appending it."""
        grown = text.size + len(piece) - last
        if final or grown > self.lag:
            return grown > 0
        if not self.heavy or grown < STREAM_SENTENCE_STEP:
            return False
        start = last + STREAM_SENTENCE_STEP - 1  # where a sentence's end makes the step
        if start < text.size and text.search(_SENTENCE_END, start):
            return True
        return _SENTENCE_END.search(piece, max(0, start - text.size)) is not None

    def settled(self, begin: int, last: int, size: int, *, final: bool) -> bool:
        """Whether a finding that begins at ``begin`` is taken by the scan at length ``size``
        (the previous one was at ``last``); always, for a rule whose findings never wait."""
        if not self.settles:
            return True
        if begin + self.span <= last:
            return False
        return final or begin + self.span <= size

    def waits(self, begin: int, size: int) -> bool:
        """Whether a finding that begins at ``begin`` waits for more text to settle."""
        return self.settles and begin + self.span > size
