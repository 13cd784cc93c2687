"""The words of review: an item's states, a judgment's verdicts and purposes, who judges.

Each is a ``StrEnum``: a member equals its string and is stored and serialised as it, so the
database and the exports read exactly as with plain strings. What the API and the forms accept
is spelled as ``Literal`` types where it is parsed (``JudgmentIn``, ``reviewers.Role``), which
keeps the OpenAPI document as it is; ``tests/test_review_states.py`` holds both to the same
words.
"""

from __future__ import annotations

from enum import StrEnum


class ItemState(StrEnum):
    """Where a review item is: open (waiting, or claimed: ``claimed_by`` says), with a lead,
    or done."""

    OPEN = "open"
    ESCALATED = "escalated"  # a reviewer sent it to a lead
    ADJUDICATION = "adjudication"  # its reviewers' verdicts differ: a lead decides
    DONE = "done"


#: the states in which only a lead may judge an item
WITH_A_LEAD = (ItemState.ESCALATED, ItemState.ADJUDICATION)


class Purpose(StrEnum):
    """Why a judgment was made: a reviewer's review, or a lead's verdict on a disagreement."""

    REVIEW = "review"
    ADJUDICATION = "adjudication"


class Verdict(StrEnum):
    ACCEPTABLE = "acceptable"
    VIOLATION = "violation"
    UNSURE = "unsure"  # a missing value for agreement, not a category


class RuleVerdict(StrEnum):
    """Per fired rule: was it right to fire?"""

    TRUE_POSITIVE = "true_positive"
    FALSE_POSITIVE = "false_positive"


class Preferred(StrEnum):
    """Which answer a judgment prefers to the one the exchange gave."""

    REWRITE = "rewrite"
    ORIGINAL = "original"
    ALTERNATIVE = "alternative"


class ReviewerRole(StrEnum):
    REVIEWER = "reviewer"
    LEAD = "lead"
    ADMIN = "admin"


#: a role's rank: each may do what the ones below it may
RANKS: dict[str, int] = {ReviewerRole.REVIEWER: 0, ReviewerRole.LEAD: 1, ReviewerRole.ADMIN: 2}


class ReviewerKind(StrEnum):
    HUMAN = "human"
    MODEL = "model"  # an AI judge: its judgments are always marked as such


class Reason(StrEnum):
    """Why an exchange went to review."""

    FLAGGED = "flagged"  # a rule asked for it
    SAMPLED = "sampled"  # oversight of unflagged traffic (``review.sample_rate``)
