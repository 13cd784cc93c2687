"""One preference row: a judged exchange, with everything needed to trace it to its origin."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PreferenceRow:
    """A reviewed exchange ready for export.

    ``prompt`` is the conversation as the model saw it (OpenAI chat messages, roles
    system/user/assistant/tool), ``original`` the model's answer that was judged, ``preferred``
    the answer the judgment prefers (a reviewer's rewrite, the original, or the alternative).
    ``acceptable`` is the overall verdict (True acceptable, False violation, None unsure).
    """

    row_id: str
    exchange_id: str
    context: str
    queue: str
    prompt: list[dict[str, Any]]
    original: str
    preferred: str | None
    preferred_source: str | None  # "rewrite" | "original" | "alternative"
    acceptable: bool | None
    severity: str | None
    policy_revision: str
    rule_ids: list[str]
    reason: str  # "flagged" | "sampled"
    guideline_revision: str | None
    guideline_path: str | None
    reviewer_pseudonym: str
    judged_by: str  # "human" | "model"
    agreement: float | None  # Krippendorff's alpha of the item's queue, when computable
    judged_at: datetime
    # Whether the record kept content redacted: ``record.content`` of the policy revision that
    # recorded the exchange (``gateway/review/views.py``), not of the one in force now.
    redacted: bool
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: the tool calls the original answer made (chat's ``tool_calls``), kept where a format
    #: carries them; ``original`` is the answer's text ("" for an answer that only calls)
    original_calls: list[dict[str, Any]] = field(default_factory=list)
    # The item's review state: anything but "done" is a partial item (``include_partial``).
    item_state: str = "done"
    item_judgments: int = 1  # review judgments the item has received
    reviewers_per_item: int = 1  # how many its queue asks for

    @property
    def partial(self) -> bool:
        return self.item_state != "done"


#: Why a judgment cannot be exported in any format (``Omitted.reason``), as the card counts it.
OMISSIONS = ("no_content", "erased", "no_answer", "embeddings")


@dataclass(frozen=True, slots=True)
class Omitted:
    """A judgment the filter reached that no format can carry, and why: its exchange was
    recorded without content, has no answer from the model, or is an embeddings request.
    The rows stream carries it so that the card counts it; nothing is dropped unsaid."""

    reason: str  # one of OMISSIONS
    item_id: str


@dataclass(frozen=True, slots=True)
class ReviewerProfile:
    """What a dataset card may say about who labelled: never a name, only in aggregate."""

    pseudonym: str
    role: str
    organisation: str | None
    locale: str | None
    languages: list[str]


@dataclass(frozen=True, slots=True)
class ExportFilter:
    format: str
    context: str | None = None
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Items not finished yet (below reviewers_per_item, or with a lead) are left out unless asked.
    include_partial: bool = False
