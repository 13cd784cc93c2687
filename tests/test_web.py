"""The reviewers' web page over plain HTTP: sign-in and sign-out, CSRF, access by URL, escaping
of untrusted text, security headers, and errors shown as pages. The browser tests drive the
same pages through Chromium (test_web_browser.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.web.conversation import Mark, segments
from tests.reviewing import Reviewer
from tests.servers import Gateway
from tests.web import CONTEXT, QUEUE, Browserless, ask, desk_key, drain, hidden, wait_waiting

HOSTILE = (
    "<script>alert('x')</script> <img src=x onerror=alert(1)> **bold** [link](javascript:x) "
    "please flag me"
)


@pytest.fixture
def desk(gateway: Gateway) -> Iterator[tuple[Reviewer, str]]:
    admin = Reviewer(gateway, "Desk Admin", role="admin")
    drain(admin)
    yield admin, desk_key(gateway)
    drain(admin)


def test_signing_in_and_out(gateway: Gateway) -> None:
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    with httpx.Client(base_url=f"{gateway.url}/ui", follow_redirects=False) as http:
        to_login = http.get("/")
        assert to_login.status_code == 303
        assert to_login.headers["location"] == "/ui/login?next=/ui/"
        login = http.get("/login")
        wrong = http.post(
            "/login", data={"csrf": hidden(login.text, "csrf"), "token": "rv-not-a-token"}
        )
        assert wrong.status_code == 401
        assert "Unknown or disabled reviewer token" in wrong.text
        assert "situate_session" not in wrong.headers.get("set-cookie", "")

    session = Browserless(gateway, rita.token)
    try:
        cookie = session.http.cookies["situate_session"]
        home = session.http.get("/")
        assert home.headers["content-security-policy"].startswith("default-src 'none'")
        assert home.headers["cache-control"] == "no-store"
        assert home.status_code == 200 and f"{CONTEXT}</td><td>{QUEUE}" in home.text
        out = session.http.post("/logout", data={"csrf": session.csrf})
        assert out.status_code == 303 and out.headers["location"].endswith("notice=signed-out")
        # The old cookie no longer works, even if it was copied before signing out.
        session.http.cookies.set("situate_session", cookie, path="/ui")
        again = session.http.get("/")
        assert again.status_code == 303 and "/ui/login" in again.headers["location"]
    finally:
        session.close()


def test_forms_need_the_sessions_csrf_token_and_our_origin(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    session = Browserless(gateway, rita.token)
    try:
        url = f"/queues/{CONTEXT}/{QUEUE}/next"
        missing = session.http.post(url, data={})
        assert missing.status_code == 403 and "csrf_failed" in missing.text
        forged = session.http.post(url, data={"csrf": "guess"})
        assert forged.status_code == 403
        elsewhere = session.http.post(
            url, data={"csrf": session.csrf}, headers={"origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403 and "another site" in elsewhere.text
        ours = session.http.post(url, data={"csrf": session.csrf}, headers={"origin": gateway.url})
        assert ours.status_code == 303  # nothing waiting: back to the queues, with a notice
        assert ours.headers["location"].startswith("/ui/?notice=empty")
        # Sign-in itself needs the token its own form was given (no login CSRF).
        with_no_cookie = session.http.post("/login", data={"csrf": "x", "token": rita.token})
        assert with_no_cookie.status_code == 403
    finally:
        session.close()


def test_untrusted_text_is_shown_as_text_and_items_stay_in_their_queues(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    olga = Reviewer(gateway, "Olga", queues=(("plain-context", "oversight"),))
    ask(gateway, key, HOSTILE)
    wait_waiting(rita, 1)
    session, outsider = Browserless(gateway, rita.token), Browserless(gateway, olga.token)
    try:
        taken = session.http.post(f"/queues/{CONTEXT}/{QUEUE}/next", data={"csrf": session.csrf})
        assert taken.status_code == 303
        item_url = taken.headers["location"].removeprefix("/ui")
        page = session.http.get(item_url)
        assert page.status_code == 200
        html = page.text
        # The hostile text arrives escaped, in the user's message and in the echoed answer.
        assert "<script>alert" not in html and "<img src=x" not in html
        assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 2
        assert "**bold** [link](javascript:x)" in html
        # The rule that fired is highlighted on its exact span, with its why.
        assert re.search(
            r'<mark class="hl hl-flag" title="needs-a-look: keyword:flag me, flag">flag me</mark>'
            r'<sup class="tag" aria-label="rule needs-a-look">1</sup>',
            html,
        )
        assert "The user asked for a human to look at this exchange." in html
        # Another reviewer edits the URL: the item is not theirs to see.
        denied = outsider.http.get(item_url)
        assert denied.status_code == 404 and "flag me" not in denied.text
        assert "No review item" in denied.text and denied.headers["content-type"].startswith(
            "text/html"
        )
        stolen = outsider.http.post(f"{item_url}/escalate", data={"csrf": outsider.csrf})
        assert stolen.status_code == 404
        # The guideline page escapes the guideline's text as well.
        revision = hidden(html, "guideline_revision")
        guide = session.http.get(f"/guidelines/{revision}")
        assert "&lt;script&gt;document.title" in guide.text and "<script>document" not in guide.text
        assert outsider.http.get(f"/guidelines/{revision}").status_code == 404
    finally:
        session.close()
        outsider.close()


def test_pages_errors_are_pages_and_the_api_stays_json(gateway: Gateway) -> None:
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    session = Browserless(gateway, rita.token)
    try:
        missing = session.http.get("/no-such-page")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(
            "text/html"
        )
        not_lead = session.http.get("/lead")
        assert not_lead.status_code == 403 and "This needs the lead role." in not_lead.text
        bad_query = session.http.get("/lead/agreement")
        assert bad_query.status_code in (400, 403)
        api = session.http.get(f"{gateway.url}/review/items/nope")
        assert api.status_code == 401 and api.json()["error"]["code"] == "invalid_reviewer_token"
        static = session.http.get("/static/app.js")
        assert static.status_code == 200 and "keydown" in static.text
    finally:
        session.close()


def test_segments_cut_text_at_every_span_and_keep_overlaps() -> None:
    a, b = Mark("r1", "x", "none"), Mark("r2", "y", "redact")
    cut = segments("hello world", [(0, 5, a), (3, 8, b), (20, 30, a)])
    assert [(s.text, [m.rule for m in s.marks]) for s in cut] == [
        ("hel", ["r1"]),
        ("lo", ["r1", "r2"]),
        (" wo", ["r2"]),
        ("rld", []),
    ]
    assert "".join(s.text for s in cut) == "hello world"
    assert segments("", []) == []


def test_queue_counts_through_the_api_and_the_command_line(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))

    def desk_row() -> dict[str, Any]:
        rows = rita.get("/queues").json()["data"]
        return next((r for r in rows if r["queue"] == QUEUE), {"waiting": 0, "claimed": 0})

    before = desk_row()
    ask(gateway, key, "count me, flag me")
    wait_waiting(rita, before["waiting"] + 1)
    after = desk_row()
    assert after["claimed"] == before["claimed"] and after["oldest_waiting"] is not None
    printed = gateway.cli("review", "status", "--json")
    assert printed.returncode == 0, printed.stderr
    rows = [json.loads(line) for line in printed.stdout.splitlines()]
    assert {"context": CONTEXT, "queue": QUEUE}.items() <= next(
        r for r in rows if r["queue"] == QUEUE
    ).items()
