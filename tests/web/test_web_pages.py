"""What pages say, over plain HTTP: the agreement page with and without a queue chosen, a
guideline named by its file and revision (never where it lies on the server), and an error
page with a way back."""

from __future__ import annotations

import re

from tests.reviewing import Reviewer, judgment
from tests.servers import Gateway
from tests.webpage import CONTEXT, QUEUE, Browserless, ask, wait_waiting


def test_agreement_without_a_queue_shows_each_of_the_leads_queues(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    lena = Reviewer(gateway, "Lena", role="lead", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "agree on this, flag me")
    wait_waiting(rita, 1)
    item = rita.claim(CONTEXT, QUEUE)
    assert item is not None
    assert rita.post(f"/items/{item['id']}/judgments", judgment(item)).status_code == 201
    expected = lena.get("/agreement", context=CONTEXT, queue=QUEUE).json()
    session = Browserless(gateway, lena.token)
    try:
        every = session.http.get("/lead/agreement")
        assert every.status_code == 200, every.text
        assert "built-in method" not in every.text
        assert f"{CONTEXT}/{QUEUE}" in every.text
        one = session.http.get("/lead/agreement", params={"context": CONTEXT, "queue": QUEUE})
        assert one.status_code == 200 and "built-in method" not in one.text
        said = re.search(r"(\d+) standing judgments? on (\d+) items?", one.text)
        assert said, one.text
        assert (int(said[1]), int(said[2])) == (expected["judgments"], expected["items"])
        assert "Rule <code>needs-a-look</code> right / wrong" in one.text
        # A queue that is not the lead's is not found, named or not.
        other = session.http.get("/lead/agreement", params={"context": "plain-context"})
        assert other.status_code == 404
    finally:
        session.close()


def test_a_guideline_is_named_by_file_and_revision_not_by_its_path(
    gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "which guideline? flag me")
    wait_waiting(rita, 1)
    item = rita.claim(CONTEXT, QUEUE)
    assert item is not None
    session = Browserless(gateway, rita.token)
    try:
        page = session.http.get(f"/items/{item['id']}/guideline")
        assert page.status_code == 200
        assert "desk.md" in page.text and item["guideline_revision"][:12] in page.text
        assert str(gateway.policies) not in page.text
        assert not re.search(r"(/[\w.-]+){2,}/guidelines/desk\.md", page.text)
        assert rita.post(f"/items/{item['id']}/skip").status_code == 200
    finally:
        session.close()


def test_an_error_page_has_the_navigation_and_sign_out(gateway: Gateway) -> None:
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    session = Browserless(gateway, rita.token)
    try:
        for path, status in (("/items/itm_none", 404), ("/lead", 403), ("/no-such-page", 404)):
            page = session.http.get(path)
            assert page.status_code == status
            assert '<nav aria-label="Main">' in page.text, path
            assert 'action="/ui/logout"' in page.text and session.csrf in page.text
        out = session.http.post("/logout", data={"csrf": session.csrf})
        assert out.status_code == 303
        # Signed out, an error page offers to sign in (and shows no one's name).
        gone = session.http.get("/no-such-page")
        assert gone.status_code == 404 and 'href="/ui/login"' in gone.text
        assert 'action="/ui/logout"' not in gone.text
    finally:
        session.close()
