"""The words a decision is made of: actions, what was enforced, modes and stages.

Each is a ``StrEnum``: a member is equal to its string and serialises as it, so a record, a
row or an export reads exactly as it did with plain strings. The policy file's own schema
(``gateway.policy.schema``) spells the values it accepts as ``Literal`` types, which keep the
published JSON schema and its error messages as they are; ``tests/test_policy_actions.py``
holds the two to the same words.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a rule (or a limit) calls for when it fires; a decision's verdict is the most
    severe of its enforcing rules' actions (``SEVERITY``), ``allow`` when none fired."""

    BLOCK = "block"
    ROUTE = "route"
    REDACT = "redact"
    FLAG = "flag"
    WARN = "warn"
    CLAMP = "clamp"  # a limit: max_tokens lowered to the context's limit
    ALLOW = "allow"  # the verdict when no enforcing rule fired; never a rule's action


SEVERITY: dict[str, int] = {
    Action.BLOCK: 4,
    Action.ROUTE: 3,
    Action.REDACT: 2,
    Action.FLAG: 1,
    Action.WARN: 1,
}


class Enforced(StrEnum):
    """What was done about a fired rule, when it was not its action (``Outcome.enforced``
    holds an ``Action`` when the action was carried out)."""

    NONE = "none"  # nothing (yet): not fired, or made moot by a block
    SHADOW = "shadow"  # a shadow rule: recorded, never enforced
    FAIL_OPEN = "fail_open"  # the check failed and the rule lets the request through
    FAIL_CLOSED = "fail_closed"  # the check failed and the request was refused


class Mode(StrEnum):
    ENFORCE = "enforce"
    SHADOW = "shadow"  # recorded (and reviewed), never enforced


class OnError(StrEnum):
    """What a rule's failing check does: the values of ``on_error``."""

    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"


class Stage(StrEnum):
    """Where a rule reads: the request's messages, the answer, or both (a rule's ``stage``;
    an outcome's is ``input`` or ``output``)."""

    INPUT = "input"
    OUTPUT = "output"
    BOTH = "both"
