"""What an export's filter reached in the database, and the sentences that say so.

The rows say what was exported; only the database knows what the filter reached and left out:
judgments on items that are not finished yet (below their queue's ``reviewers_per_item``,
disputed, escalated), a date window nothing fell in, a context nobody reviewed. These counts
arrive already made, so the card and the command line can say plainly why an export is small
or empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.export.rows import OMISSIONS, ExportFilter

PARTIAL_OPTION = (
    "`--include-partial` on the command line, `include_partial` in the API and on the export page"
)


@dataclass(frozen=True, slots=True)
class Unfinished:
    """Standing judgments (in the date window) on items of one state and progress."""

    state: str  # open | escalated | adjudication
    judgments_done: int
    reviewers_needed: int
    items: int
    judgments: int


@dataclass(frozen=True, slots=True)
class ExportScope:
    """Counts over the filter's context and queue (``served`` are the contexts served now)."""

    items: int = 0  # review items in the context and queue
    judgments: int = 0  # standing judgments on them, at any time
    in_window: int = 0  # of those, made in the filter's date window
    unfinished: tuple[Unfinished, ...] = ()
    served: tuple[str, ...] = field(default_factory=tuple)

    def unfinished_totals(self) -> tuple[int, int]:
        """(judgments, items) on unfinished items, in the date window."""
        return (
            sum(u.judgments for u in self.unfinished),
            sum(u.items for u in self.unfinished),
        )


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _why(state: str, groups: list[Unfinished]) -> str:
    if state == "open":
        progress = ", ".join(
            f"{counted(g.items, 'item')} with {g.judgments_done} of {g.reviewers_needed}"
            for g in sorted(groups, key=lambda g: (g.judgments_done, g.reviewers_needed))
        )
        return f"that have not reached their queue's `reviewers_per_item` ({progress})"
    if state == "adjudication":
        return "whose reviewers disagreed and that wait for a lead's adjudication"
    return "that a reviewer escalated to a lead"


def unfinished_phrases(scope: ExportScope) -> list[str]:
    """'4 judgments on 2 items that …', one phrase per state of unfinished item."""
    by_state: dict[str, list[Unfinished]] = {}
    for group in scope.unfinished:
        by_state.setdefault(group.state, []).append(group)
    phrases = []
    for state in sorted(by_state, key=("open", "adjudication", "escalated").index):
        groups = by_state[state]
        judgments = sum(g.judgments for g in groups)
        items = sum(g.items for g in groups)
        phrases.append(
            f"{counted(judgments, 'judgment')} on {counted(items, 'item')} {_why(state, groups)}"
        )
    return phrases


def partial_lines(scope: ExportScope, flt: ExportFilter) -> list[str]:
    """The card's bullets on unfinished items: left out (and how to include them), or included."""
    phrases = unfinished_phrases(scope)
    if not phrases:
        return ["- No judgment matching the filter is on an unfinished item."]
    if flt.include_partial:
        return [
            *(f"- Included although unfinished: {p}." for p in phrases),
            "- Each of their lines is marked `partial: true` in the provenance file, with the"
            " item's `item_state`, `item_judgments` and `reviewers_per_item`.",
        ]
    return [
        *(f"- Left out: {p}." for p in phrases),
        f"- Unfinished items are exported only on request: {PARTIAL_OPTION}; the provenance"
        " file then marks each of their lines `partial: true`.",
    ]


def _omitted_why(reason: str, items: int) -> str:
    exchanges = "whose exchange was" if items == 1 else "whose exchanges were"
    if reason == "no_content":
        return (
            f"{exchanges} recorded without content (`record.content: none`), so there is no"
            " prompt or answer to export"
        )
    if reason == "erased":
        return (
            f"{exchanges} erased since (retention, or a person's request: an erasure event on"
            " the audit chain says which), so there is no prompt or answer to export"
        )
    if reason == "no_answer":
        return (
            f"{exchanges} not answered by the model (refused with an error, or failed before"
            " an answer), so there is no answer to prefer or reject"
        )
    if items == 1:
        return "that is an embeddings request (`/v1/embeddings`), which has no answer to prefer"
    return "that are embeddings requests (`/v1/embeddings`), which have no answer to prefer"


def omitted_phrases(judgments: Mapping[str, int], items: Mapping[str, int]) -> list[str]:
    """'2 judgments on 2 items whose …', one phrase per reason no format can carry them."""
    return [
        f"{counted(judgments[r], 'judgment')} on {counted(items[r], 'item')}"
        f" {_omitted_why(r, items[r])}"
        for r in OMISSIONS
        if judgments.get(r)
    ]


def _window(flt: ExportFilter) -> str:
    if flt.since and flt.until:
        return f"between {flt.since.isoformat()} and {flt.until.isoformat()}"
    if flt.since:
        return f"since {flt.since.isoformat()}"
    return f"before {flt.until.isoformat()}" if flt.until else "at any time"


def _where(flt: ExportFilter) -> str:
    parts = [
        f"context `{flt.context}`" if flt.context else "",
        f"queue `{flt.queue}`" if flt.queue else "",
    ]
    shown = " and ".join(p for p in parts if p)
    return f" in {shown}" if shown else ""


def _nothing_reached(scope: ExportScope, flt: ExportFilter) -> str:
    if flt.context and flt.context not in scope.served:
        served = ", ".join(f"`{c}`" for c in scope.served) or "none"
        return (
            f"context `{flt.context}` is not served (contexts served: {served}),"
            " and no exchange of it ever reached review"
        )
    if flt.context or flt.queue:
        return f"no exchange{_where(flt)} has reached review"
    return "no exchange has reached review yet"


def why_empty(
    scope: ExportScope,
    flt: ExportFilter,
    received: int,
    skipped: Mapping[str, int],
    omitted: list[str] = [],  # noqa: B006 (read only): omitted_phrases of the rows
) -> str:
    """Why an export wrote no record, in one sentence without its full stop."""
    if scope.items == 0:
        return _nothing_reached(scope, flt)
    if scope.judgments == 0:
        return f"the {counted(scope.items, 'review item')}{_where(flt)} have no judgment yet"
    if scope.in_window == 0:
        return (
            f"none of the {counted(scope.judgments, 'judgment')}{_where(flt)} was made"
            f" {_window(flt)}"
        )
    if skipped:
        reasons = "; ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
        return (
            f"the {counted(received, 'judgment')} that matched cannot be written in the"
            f" `{flt.format}` format ({reasons})"
        )
    return _unexported(scope, flt, omitted)


def _unexported(scope: ExportScope, flt: ExportFilter, omitted: list[str]) -> str:
    """Judgments matched but none was written: unfinished items, or none that any format
    can carry (no content kept, no answer, an embeddings request)."""
    reasons = []
    unfinished, _ = scope.unfinished_totals()
    if unfinished and not flt.include_partial:
        reasons.append(
            f"{'; '.join(unfinished_phrases(scope))} {_are(unfinished)} left out as"
            f" unfinished (export them with {PARTIAL_OPTION})"
        )
    if omitted:
        others = "the others cannot" if reasons else "none can"
        reasons.append(f"{others} be written in any format: {'; and '.join(omitted)}")
    if not reasons:
        return "no judgment that matched speaks for its item (each was superseded)"
    return "of the judgments that matched, " + "; and ".join(reasons)


def _are(count: int) -> str:
    return "is" if count == 1 else "are"


def unfinished_counts(
    scope: ExportScope, flt: ExportFilter
) -> tuple[dict[str, int], dict[str, int]]:
    """(left out, included) judgments and items on unfinished items, as the API reports them."""
    judgments, items = scope.unfinished_totals()
    counts, zero = {"judgments": judgments, "items": items}, {"judgments": 0, "items": 0}
    return (zero, counts) if flt.include_partial else (counts, zero)
