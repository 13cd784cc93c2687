"""A reviewer's life after creation: a queue taken away, the account disabled, the token
rotated. Each through the command line, the review API (as an admin) and the admin page, each
taking effect at once: API, claims and web sessions alike; past judgments stay and still count
in exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.reviewing import Reviewer, flag, judgment, wait_for_item
from tests.servers import Gateway
from tests.webpage import Browserless, hidden, sign_in

TRIAGE = ("test-context", "triage")


def signed_out(session: Browserless) -> bool:
    """Whether the session's next page sends the browser to sign in."""
    page = session.http.get("/")
    return page.status_code == 303 and "/ui/login" in page.headers["location"]


def judged_item(reviewer: Reviewer, client: openai.OpenAI) -> dict[str, object]:
    """The reviewer judges one triage item (a rewrite, so every format exports it)."""
    flag(client, "flag me for the lifecycle tests")
    item = wait_for_item(reviewer, *TRIAGE)
    made = reviewer.post(f"/items/{item['id']}/judgments", judgment(item))
    assert made.status_code == 201, made.text
    return item


def test_the_command_line_takes_a_queue_away(gateway: Gateway) -> None:
    uma = Reviewer(gateway, "Uma", queues=(TRIAGE, ("test-context", "quality")))
    args = ("review", "unassign", uma.id, "--context", "test-context", "--queue", "quality")
    unassigned = gateway.cli(*args)
    assert unassigned.returncode == 0, unassigned.stderr
    assert uma.get("/me").json()["queues"] == [{"context": "test-context", "queue": "triage"}]
    assert uma.post("/queues/test-context/quality/claim").status_code == 404
    again = gateway.cli(*args)
    assert again.returncode == 1 and "does not work test-context/quality" in again.stderr
    unknown = gateway.cli("review", "disable", "rvr_nobody")
    assert unknown.returncode == 1 and "No reviewer 'rvr_nobody'" in unknown.stderr


def test_the_command_line_rotates_a_token(gateway: Gateway) -> None:
    una = Reviewer(gateway, "Una", queues=(TRIAGE,))
    old_token = una.token
    session = Browserless(gateway, old_token)
    rotated = gateway.cli("review", "rotate-token", una.id)
    assert rotated.returncode == 0, rotated.stderr
    una.token = rotated.stdout.strip()
    assert una.token.startswith("rv-") and una.token != old_token
    old = httpx.get(f"{gateway.url}/review/me", headers={"authorization": f"Bearer {old_token}"})
    assert old.status_code == 401
    assert una.get("/me").status_code == 200
    assert signed_out(session)  # the old token's sessions ended with it
    session.close()


def test_the_command_line_disables_and_the_judgments_stay(
    gateway: Gateway, client: openai.OpenAI, tmp_path: Path
) -> None:
    uli = Reviewer(gateway, "Uli", queues=(TRIAGE,))
    item = judged_item(uli, client)
    pseudonym = uli.get("/me").json()["pseudonym"]
    session = Browserless(gateway, uli.token)
    disabled = gateway.cli("review", "disable", uli.id)
    assert disabled.returncode == 0, disabled.stderr
    assert uli.get("/me").status_code == 401
    assert uli.post("/queues/test-context/triage/claim").status_code == 401
    assert signed_out(session)
    session.close()
    with httpx.Client(base_url=f"{gateway.url}/ui") as login:
        form = login.get("/login")
        refused = login.post("/login", data={"csrf": hidden(form.text, "csrf"), "token": uli.token})
    assert refused.status_code == 401 and "disabled" in refused.text
    listed = gateway.cli("review", "reviewers").stdout
    assert any(uli.id in line and "disabled" in line for line in listed.splitlines())

    # Their judgment stays, and still counts in an export.
    out = tmp_path / "export"
    done = gateway.cli(
        "export", "preferences", "--format", "trl", "--context", "test-context", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    mine = [p for p in provenance if p["exchange_id"] == item["exchange_id"]]
    assert [p["reviewer_pseudonym"] for p in mine] == [pseudonym]

    enabled = gateway.cli("review", "enable", uli.id)
    assert enabled.returncode == 0, enabled.stderr
    assert uli.get("/me").status_code == 200


def test_the_api_unassigns_disables_and_rotates(gateway: Gateway, client: openai.OpenAI) -> None:
    admin = Reviewer(gateway, "Api Admin", role="admin")
    vera = Reviewer(gateway, "Vera", queues=(TRIAGE, ("test-context", "quality")))
    other = Reviewer(gateway, "Walt", queues=(TRIAGE,))
    assert vera.get("/reviewers").status_code == 403  # admins only

    listed = {r["id"]: r for r in admin.get("/reviewers").json()["data"]}
    assert listed[vera.id]["queues"] == [
        {"context": "test-context", "queue": "quality"},
        {"context": "test-context", "queue": "triage"},
    ]
    assert listed[vera.id]["disabled_at"] is None and "token" not in json.dumps(listed[vera.id])

    gone = httpx.delete(
        f"{gateway.url}/review/reviewers/{vera.id}/queues/test-context/quality",
        headers={"authorization": f"Bearer {admin.token}"},
    )
    assert gone.status_code == 200, gone.text
    assert vera.post("/queues/test-context/quality/claim").status_code == 404
    missing = httpx.delete(
        f"{gateway.url}/review/reviewers/{vera.id}/queues/test-context/quality",
        headers={"authorization": f"Bearer {admin.token}"},
    )
    assert missing.status_code == 404

    old = vera.token
    rotated = admin.post(f"/reviewers/{vera.id}/rotate-token")
    assert rotated.status_code == 200, rotated.text
    vera.token = rotated.json()["token"]
    assert vera.get("/me").status_code == 200
    assert (
        httpx.get(
            f"{gateway.url}/review/me", headers={"authorization": f"Bearer {old}"}
        ).status_code
        == 401
    )

    # Disabled while holding a claim: the claim goes back to the queue at once.
    flag(client, "flag me, then the reviewer leaves")
    held = wait_for_item(vera, *TRIAGE)
    session = Browserless(gateway, vera.token)
    disabled = admin.post(f"/reviewers/{vera.id}/disable")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    assert vera.get("/me").status_code == 401
    assert signed_out(session)
    session.close()
    assert admin.get(f"/items/{held['id']}").json()["claimed_by"] is None
    taken = other.claim(*TRIAGE)  # the item is free for anyone again
    assert taken is not None
    assert other.post(f"/items/{taken['id']}/skip").status_code == 200

    assert admin.post(f"/reviewers/{admin.id}/disable").status_code == 400  # not yourself
    assert admin.post("/reviewers/rvr_nobody/disable").status_code == 404
    assert admin.post(f"/reviewers/{vera.id}/enable").status_code == 200
    assert vera.get("/me").status_code == 200


def test_the_admin_page_unassigns_disables_and_rotates(gateway: Gateway) -> None:
    admin = Reviewer(gateway, "Page Admin", role="admin")
    xena = Reviewer(gateway, "Xena", queues=(TRIAGE, ("test-context", "quality")))
    page = Browserless(gateway, admin.token)
    theirs = Browserless(gateway, xena.token)
    try:
        listing = page.http.get("/reviewers")
        assert listing.status_code == 200, listing.text
        assert "Xena" in listing.text and xena.id in listing.text
        assert page.http.get("/").text.count('href="/ui/reviewers"') == 1  # in the navigation

        csrf = page.csrf
        removed = page.http.post(
            f"/reviewers/{xena.id}/unassign",
            data={"csrf": csrf, "context": "test-context", "queue": "quality"},
        )
        assert removed.status_code == 303, removed.text
        assert xena.get("/me").json()["queues"] == [{"context": "test-context", "queue": "triage"}]

        rotated = page.http.post(f"/reviewers/{xena.id}/rotate-token", data={"csrf": csrf})
        assert rotated.status_code == 200, rotated.text
        token = hidden(rotated.text, "new-token")
        assert token.startswith("rv-") and token != xena.token
        assert xena.get("/me").status_code == 401
        xena.token = token
        assert xena.get("/me").status_code == 200
        assert signed_out(theirs)

        theirs.close()
        theirs = Browserless(gateway, xena.token)
        forged = page.http.post(f"/reviewers/{xena.id}/disable", data={"csrf": "wrong"})
        assert forged.status_code == 403 and xena.get("/me").status_code == 200
        disabled = page.http.post(f"/reviewers/{xena.id}/disable", data={"csrf": csrf})
        assert disabled.status_code == 303
        assert xena.get("/me").status_code == 401 and signed_out(theirs)
        assert "disabled" in page.http.get("/reviewers").text

        lead = Reviewer(gateway, "Not An Admin", role="lead")
        lead_page = Browserless(gateway, lead.token)
        try:
            assert lead_page.http.get("/reviewers").status_code == 403
        finally:
            lead_page.close()
    finally:
        page.close()
        theirs.close()


UNLABELED = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.textContent.trim()).map(e => e.outerHTML)"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_admin_pages_in_a_browser(gateway: Gateway, browser: Any, width: int) -> None:
    """The reviewers page and the export form fit the window, every control has a label, and
    a click disables a reviewer."""
    admin = Reviewer(gateway, f"Browser Admin {width}", role="admin")
    yuri = Reviewer(gateway, f"Yuri {width}", queues=(TRIAGE,))
    page = sign_in(browser, gateway, admin.token, viewport={"width": width, "height": 800})
    for path in ("/ui/reviewers", "/ui/exports"):
        page.goto(f"{gateway.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        assert page.evaluate(UNLABELED) == [], path
    page.goto(f"{gateway.url}/ui/reviewers")
    page.get_by_role("button", name=f"Disable Yuri {width}").click()
    page.wait_for_url(re.compile(r"/ui/reviewers\?notice=disabled"))
    assert "Reviewer disabled" in page.text_content("main")
    assert yuri.get("/me").status_code == 401
    page.context.close()


def test_the_command_line_adds_and_assigns_a_reviewer(gateway: Gateway) -> None:
    """The other tests make reviewers in process; these are the two commands that do it."""
    made = Reviewer(gateway, "Cleo", "lead", queues=(TRIAGE,), via_cli=True)
    me = made.get("/me").json()
    assert (me["role"], me["queues"]) == ("lead", [{"context": "test-context", "queue": "triage"}])
    wrong = gateway.cli("review", "assign", made.id, "--context", "test-context", "--queue", "nope")
    assert wrong.returncode == 1 and "has no review queue 'nope'" in wrong.stderr
