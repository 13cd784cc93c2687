"""The review's StrEnums and the words its API accepts (``JudgmentIn``, ``Role``) are the same
words, and a member is stored and serialised as its string."""

from __future__ import annotations

import json
from typing import get_args

from gateway.review.judging import JudgmentIn
from gateway.review.judging import Verdict as VerdictWord
from gateway.review.reviewers import ReviewerIdentity, Role
from gateway.review.states import (
    RANKS,
    ItemState,
    Preferred,
    ReviewerRole,
    RuleVerdict,
    Verdict,
)


def _args(name: str) -> set[str]:
    annotation = JudgmentIn.model_fields[name].annotation
    (literal, _none) = get_args(annotation)  # X | None
    return set(get_args(literal))


def test_the_api_accepts_exactly_the_enums_words() -> None:
    assert set(get_args(VerdictWord)) == set(Verdict)
    assert set(get_args(Role)) == set(ReviewerRole) == set(RANKS)
    assert _args("preferred") == set(Preferred)
    rule_verdicts = get_args(JudgmentIn.model_fields["rule_verdicts"].annotation)[1]
    assert set(get_args(rule_verdicts)) == set(RuleVerdict)


def test_ranks_order_the_roles_and_take_plain_strings() -> None:
    lead = ReviewerIdentity("r", "p", "lead", "human", frozenset())
    lead.require("reviewer")
    lead.require(ReviewerRole.LEAD)
    assert lead.leads and not lead.may_see("demo", "tone")
    admin = ReviewerIdentity("a", "p", ReviewerRole.ADMIN, "human", frozenset())
    assert admin.may_see("demo", "tone")


def test_states_serialise_as_their_words() -> None:
    assert json.dumps({"state": ItemState.ADJUDICATION}) == '{"state": "adjudication"}'
    assert ItemState.OPEN == "open" and ItemState.DONE == "done"
    assert {ItemState.ESCALATED: 1}.get("escalated") == 1
