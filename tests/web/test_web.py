"""The reviewers' web page over plain HTTP: sign-in and sign-out, CSRF, access by URL, escaping
of untrusted text, security headers, and errors shown as pages. The browser tests drive the
same pages through Chromium (test_web_browser.py)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.middleware import RequestIdMiddleware
from gateway.web.conversation import Mark, segments
from tests.reviewing import Reviewer, judgment
from tests.servers import Gateway
from tests.webpage import CONTEXT, QUEUE, Browserless, ask, hidden, wait_waiting

HOSTILE = (
    "<script>alert('x')</script> <img src=x onerror=alert(1)> **bold** [link](javascript:x) "
    "please flag me"
)


def test_signing_in_and_out(gateway: Gateway) -> None:
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    with httpx.Client(base_url=f"{gateway.url}/ui", follow_redirects=False) as http:
        to_login = http.get("/")
        assert to_login.status_code == 303
        assert to_login.headers["location"] == "/ui/login?next=/ui/"
        deep = http.get("/lead/agreement", params={"context": CONTEXT, "queue": QUEUE})
        next_url = httpx.URL(deep.headers["location"]).params["next"]
        assert next_url == f"/ui/lead/agreement?context={CONTEXT}&queue={QUEUE}"
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
        assert home.status_code == 200 and f"<td>{CONTEXT}/{QUEUE}</td>" in home.text
        again = Browserless(gateway, rita.token, session.http)  # signs in again, same browser
        assert session.http.cookies["situate_session"] != cookie
        stale = httpx.get(f"{gateway.url}/ui/", cookies={"situate_session": cookie})
        assert stale.status_code == 303  # the session the browser had is over
        cookie = session.http.cookies["situate_session"]
        out = session.http.post("/logout", data={"csrf": again.csrf})
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
            url,
            data={"csrf": session.csrf},
            headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        )
        assert elsewhere.status_code == 403 and "another site" in elsewhere.text
        ours = session.http.post(
            url, data={"csrf": session.csrf}, headers={"sec-fetch-site": "same-origin"}
        )
        assert ours.status_code == 303  # nothing waiting: back to the queues, with a notice
        assert ours.headers["location"].startswith("/ui/?notice=empty")
        # Sign-in itself needs the token its own form was given (no login CSRF).
        with_no_cookie = session.http.post("/login", data={"csrf": "x", "token": rita.token})
        assert with_no_cookie.status_code == 403
        empty = session.http.post("/login", data={"csrf": "", "token": rita.token})
        assert empty.status_code == 403  # no token given, none sent: still no match
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
        guide = session.http.get(f"{item_url}/guideline")
        assert guide.status_code == 200 and revision in guide.text
        assert "&lt;script&gt;document.title" in guide.text and "<script>document" not in guide.text
        assert outsider.http.get(f"{item_url}/guideline").status_code == 404
        back = session.http.post(f"{item_url}/skip", data={"csrf": session.csrf})
        assert back.status_code == 303 and "notice=skipped" in back.headers["location"]
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
        not_lead_either = session.http.get("/lead/agreement")
        assert not_lead_either.status_code == 403
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
    assert after["claimed"] == before["claimed"] and after["oldest_open"] is not None
    printed = gateway.command("review", "status", "--json")
    assert printed.returncode == 0, printed.stderr
    rows = [json.loads(line) for line in printed.stdout.splitlines()]
    assert {"context": CONTEXT, "queue": QUEUE}.items() <= next(
        r for r in rows if r["queue"] == QUEUE
    ).items()


def test_a_skipped_item_comes_back_only_when_nothing_else_waits(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "first, flag me")
    ask(gateway, key, "second, flag me")
    wait_waiting(rita, 2)
    session = Browserless(gateway, rita.token)
    try:

        def take() -> str:
            taken = session.http.post(
                f"/queues/{CONTEXT}/{QUEUE}/next", data={"csrf": session.csrf}
            )
            assert taken.status_code == 303 and "/items/" in taken.headers["location"]
            return str(taken.headers["location"]).removeprefix("/ui/items/")

        first = take()
        assert session.http.post(f"/items/{first}/skip", data={"csrf": session.csrf}).is_redirect
        second = take()
        assert second != first  # not the item just skipped
        assert session.http.post(f"/items/{second}/skip", data={"csrf": session.csrf}).is_redirect
        assert take() == first  # nothing else waits: the skipped ones come back, oldest first
        assert session.http.post(f"/items/{first}/skip", data={"csrf": session.csrf}).is_redirect
    finally:
        session.close()


def test_a_refusal_is_shown_as_the_gateways_not_as_the_models(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "tell me about the forbidden topic")
    wait_waiting(rita, 1)
    session = Browserless(gateway, rita.token)
    try:
        taken = session.http.post(f"/queues/{CONTEXT}/{QUEUE}/next", data={"csrf": session.csrf})
        html = session.http.get(taken.headers["location"].removeprefix("/ui")).text
        assert "The gateway's refusal (the model was not asked)" in html
        assert "We cannot discuss that here." in html
        assert 'value="original"' not in html  # a refusal is not offered as the model's answer
        assert "blocked" in html
        item = taken.headers["location"].removeprefix("/ui/items/")
        assert session.http.post(f"/items/{item}/skip", data={"csrf": session.csrf}).is_redirect
    finally:
        session.close()


def test_export_dates_are_whole_days_and_a_naive_time_is_a_clear_error(gateway: Gateway) -> None:
    ada = Reviewer(gateway, "Ada", role="admin")
    naive = ada.post("/exports", {"format": "trl", "since": "2026-01-01T00:00:00"})
    assert naive.status_code == 400
    assert naive.json()["error"]["param"] == "since"
    session = Browserless(gateway, ada.token)
    try:
        bad = session.http.post(
            "/exports", data={"csrf": session.csrf, "format": "trl", "since": "yesterday"}
        )
        assert bad.status_code == 400 and "is not a date" in bad.text
        today = datetime.now(UTC).date().isoformat()
        made = session.http.post(
            "/exports",
            data={"csrf": session.csrf, "format": "kto", "since": today, "until": today},
        )
        assert made.status_code == 303, made.text
        listed = ada.get("/exports").json()["data"][-1]
        assert listed["filter"]["since"].startswith(f"{today}T00:00:00")
        assert listed["filter"]["until"] > listed["filter"]["since"]  # the day is included
    finally:
        session.close()


def test_a_bug_answers_a_page_on_the_web_paths_and_openais_shape_elsewhere() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    async def ask_both() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=RequestIdMiddleware(broken), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            return await http.get("/ui/items/x"), await http.post("/v1/chat/completions")

    page, api = asyncio.run(ask_both())
    assert page.status_code == api.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-request-id"] in page.text and "Back to your queues" in page.text
    assert api.json()["error"]["code"] == "internal_error"


def test_a_reviewer_corrects_their_judgment_from_the_page(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "judge me twice, flag me")
    wait_waiting(rita, 1)
    item = rita.claim(CONTEXT, QUEUE)
    assert item is not None
    first = rita.post(f"/items/{item['id']}/judgments", judgment(item, rationale="First look."))
    assert first.status_code == 201
    session = Browserless(gateway, rita.token)
    try:
        home = session.http.get("/").text
        assert "Your recent judgments" in home and item["id"] in home
        page = session.http.get(f"/items/{item['id']}").text
        assert "Correct your judgment" in page
        assert "First look.</textarea>" in page  # the form holds the judgment to correct
        assert hidden(page, "supersedes") == first.json()["id"]
        corrected = session.http.post(
            f"/items/{item['id']}/correct",
            data={
                "csrf": session.csrf,
                "supersedes": first.json()["id"],
                "rule:needs-a-look": "false_positive",
                "verdict": "acceptable",
                "severity": "none",
                "preferred": "original",
                "rationale": "On a second look, fine.",
                "guideline_revision": item["guideline_revision"],
                "guideline_acknowledged": "on",
                "opened_at": "0",
            },
        )
        assert corrected.status_code == 303 and "notice=corrected" in corrected.headers["location"]
    finally:
        session.close()
    judgments = rita.get(f"/items/{item['id']}").json()["judgments"]
    assert [j["rationale"] for j in judgments] == ["First look.", "On a second look, fine."]
    assert judgments[1]["supersedes"] == judgments[0]["id"]
    assert judgments[1]["verdict"] == "acceptable"
