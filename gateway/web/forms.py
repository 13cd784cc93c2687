"""Forms: every POST carries the session's CSRF token and comes from this site; a judgment form
becomes the same ``JudgmentIn`` the API takes, so both paths check it the same way."""

from __future__ import annotations

import hmac
import time
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request

from gateway.errors import InvalidRequest, PermissionDenied
from gateway.review.judging import JudgmentIn
from gateway.review.states import Preferred

MAX_SECONDS = 24 * 3600.0


def check_origin(request: Request) -> None:
    """Browsers say where a form was sent from (``Sec-Fetch-Site``); anything but this origin,
    or the user typing the address, is refused. The header does not depend on how proxies in
    front of the gateway rewrite the host, so it holds behind any of them; the CSRF token is
    checked as well, for browsers that do not send it."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise PermissionDenied("This form was sent from another site.", code="csrf_failed")


def check_csrf(form: FormData, expected: str | None) -> None:
    """The form's token must be the one this session (or sign-in form) was given; with none
    given, nothing matches."""
    sent = form.get("csrf")
    if (
        not expected
        or not isinstance(sent, str)
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise PermissionDenied(
            "This form is stale or came from another site: reload the page and send it again.",
            code="csrf_failed",
        )


def text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _seconds_since(opened: str | None) -> float | None:
    try:
        spent = time.time() - float(opened or "")
    except ValueError:
        return None
    return min(max(spent, 0.0), MAX_SECONDS)


def judgment(form: FormData, rules: list[str]) -> JudgmentIn:
    """The judgment a form describes; a field's problem is named as the form labels it."""
    preferred = text(form, "preferred")
    data: dict[str, Any] = {
        "rule_verdicts": {r: v for r in rules if (v := text(form, f"rule:{r}"))},
        "verdict": text(form, "verdict"),
        "severity": text(form, "severity"),
        "preferred": preferred,
        "rewrite": text(form, "rewrite") if preferred == Preferred.REWRITE else None,
        "rationale": text(form, "rationale"),
        "guideline_revision": text(form, "guideline_revision"),
        "guideline_acknowledged": form.get("guideline_acknowledged") == "on",
        "seconds_spent": _seconds_since(text(form, "opened_at")),
    }
    try:
        return JudgmentIn.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "form"
            problems.append(f"{_LABELS.get(where, where)}: {_message(error)}")
        raise InvalidRequest("; ".join(problems), code="invalid_judgment") from exc


def _message(error: Any) -> str:
    if error["input"] is None:
        return "required"
    return str(error["msg"]).removeprefix("Value error, ")


_LABELS = {
    "verdict": "Verdict",
    "severity": "Severity",
    "preferred": "Preferred answer",
    "rewrite": "Rewrite",
    "rationale": "Rationale",
    "seconds_spent": "Time spent",
}
