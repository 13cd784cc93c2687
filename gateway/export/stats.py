"""What a dataset card says, counted once over the rows as the writer streams them.

The writer fills a ``CardStats`` row by row; the card (``gateway.export.card``) only reads it,
so describing an export never needs the rows again.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from gateway.export.rows import Omitted, PreferenceRow
from gateway.export.scope import omitted_phrases


@dataclass(slots=True)
class QueueAlpha:
    rows: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, value: float) -> None:
        self.rows += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


@dataclass(slots=True)
class CardStats:
    """What the card says, counted over the judgments that made it into the export."""

    format: str
    rows_in: int = 0
    rows_out: int = 0
    records_out: int = 0
    partial: int = 0  # exported judgments on unfinished items
    redacted: int = 0
    first: datetime | None = None
    last: datetime | None = None
    skipped: Counter[str] = field(default_factory=Counter)
    contexts: Counter[str] = field(default_factory=Counter)
    context_records: Counter[str] = field(default_factory=Counter)
    redacted_contexts: Counter[str] = field(default_factory=Counter)
    queues: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    guidelines: Counter[str] = field(default_factory=Counter)
    guideline_paths: dict[str, str] = field(default_factory=dict)
    judged_by: Counter[str] = field(default_factory=Counter)
    judges: Counter[tuple[str, str]] = field(default_factory=Counter)
    verdicts: Counter[bool | None] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    alpha: dict[str, QueueAlpha] = field(default_factory=dict)
    # 8 bytes per row instead of a set of exchange ids: enough to count judgments per item.
    items: array[int] = field(default_factory=lambda: array("Q"))
    # Judgments no format can carry (``Omitted``), and their items, per reason.
    omitted: Counter[str] = field(default_factory=Counter)
    omitted_items: Counter[str] = field(default_factory=Counter)
    _last_omitted: str = ""

    def omit(self, row: Omitted) -> None:
        """Rows come item by item, so an item is new when its id differs from the last."""
        self.omitted[row.reason] += 1
        if row.item_id != self._last_omitted:
            self.omitted_items[row.reason] += 1
            self._last_omitted = row.item_id

    def omitted_phrases(self) -> list[str]:
        return omitted_phrases(self.omitted, self.omitted_items)

    def add(self, row: PreferenceRow, produced: int, skip_reason: str | None) -> None:
        self.rows_in += 1
        # Every judgment received counts towards reviewers per item, even one this format
        # cannot carry: the figure describes how the data was labelled, not what was kept.
        key = hashlib.blake2b(row.exchange_id.encode(), digest_size=8).digest()
        self.items.append(int.from_bytes(key, "big"))
        if not produced:
            self.skipped[skip_reason or "not representable in this format"] += 1
            return
        self.rows_out += 1
        self.records_out += produced
        self.partial += row.partial
        self.first = row.judged_at if self.first is None else min(self.first, row.judged_at)
        self.last = row.judged_at if self.last is None else max(self.last, row.judged_at)
        self.contexts[row.context] += 1
        self.context_records[row.context] += produced
        if row.redacted:
            self.redacted += 1
            self.redacted_contexts[row.context] += 1
        self._add_judgment(row)

    def _add_judgment(self, row: PreferenceRow) -> None:
        self.queues[row.queue] += 1
        self.reasons[row.reason] += 1
        if row.reason == "flagged":
            self.rules.update(row.rule_ids)
        self.guidelines[row.guideline_revision or ""] += 1
        if row.guideline_revision and row.guideline_path:
            self.guideline_paths.setdefault(row.guideline_revision, row.guideline_path)
        self.judged_by[row.judged_by] += 1
        self.judges[(row.judged_by, row.reviewer_pseudonym)] += 1
        self.verdicts[row.acceptable] += 1
        self.sources[row.preferred_source or "none"] += 1
        if row.agreement is not None:
            self.alpha.setdefault(row.queue, QueueAlpha()).add(row.agreement)

    def judgments_per_item(self) -> Counter[int]:
        """How many items received 1, 2, … judgments (one per reviewer)."""
        per_item: Counter[int] = Counter()
        run, previous = 0, None
        for key in sorted(self.items):
            if key != previous and run:
                per_item[run] += 1
                run = 0
            run, previous = run + 1, key
        if run:
            per_item[run] += 1
        return per_item
