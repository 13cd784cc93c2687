"""The reviewers' web page in a real browser (Debian's Chromium driven by Playwright): sign in,
take an item, read its highlights, judge it with the keyboard, escalate, adjudicate as a lead,
export as an admin. What the browser did is checked where it lands: the database, through the
review API, and the exported files.

Set SITUATE_SCREENSHOTS to a folder to keep screenshots of the main pages (docs/screenshots
holds the ones the README shows)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.reviewing import Reviewer, judgment
from tests.servers import Gateway
from tests.webpage import CONTEXT, QUEUE, ask, shot, sign_in, wait_waiting

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")

# WCAG 2 contrast of every element that shows text against its effective background; the
# elements whose ratio is under 4.5:1 (3:1 for large text).
LOW_CONTRAST = """() => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === "hidden" || !el.getClientRects().length) continue;
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) {
      low.push(`${el.tagName} ${ratio.toFixed(2)} ${el.textContent.trim().slice(0, 40)}`);
    }
  }
  return low;
}"""


def item_id(page: Any) -> str:
    found = re.search(r"/ui/items/([^/?]+)", page.url)
    assert found, page.url
    return found.group(1)


def test_a_reviewer_judges_with_the_keyboard_and_escalates(
    browser: Any, gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    hostile = "<script>alert(1)</script> mail me at rita@example.com, call 030 1234567, flag me"
    ask(gateway, key, hostile)
    ask(gateway, key, "second question, flag me")
    wait_waiting(rita, 2)
    page = sign_in(browser, gateway, rita.token)
    row = page.get_by_role("row").filter(has_text=QUEUE)
    assert row.get_by_role("cell").nth(2).inner_text() == "2"  # waiting
    assert page.evaluate(LOW_CONTRAST) == []
    shot(page, "queues")

    page.keyboard.press("1")  # take the next item of the first queue
    page.wait_for_url(re.compile(r"/ui/items/"))
    first = item_id(page)
    # The conversation as the user sent it, the untrusted text shown as text.
    user = page.locator(".msg-user .text")
    assert "<script>alert(1)</script>" in user.inner_text()
    assert page.locator("script").count() == 1  # only the page's own app.js
    # Every fired rule is highlighted on its span, with its why and what was done.
    assert page.locator("mark.hl-flag").first.inner_text() == "flag me"
    assert page.locator(".msg-user mark.hl-redact").inner_text() == "rita@example.com"
    assert "030 1234567" in page.locator(".msg-assistant mark.hl-redact").inner_text()
    rules = page.locator("ol.rules")
    assert "The user asked for a human to look at this exchange." in rules.inner_text()
    assert "Phone numbers are not shown to users." in rules.inner_text()
    assert "A help desk whose flagged answers" in page.locator("#ctx-h + dl").inner_text()
    assert page.locator(".badge").inner_text() == "redacted"
    assert "flagged by rule needs-a-look" in page.locator(".why-here").inner_text()
    guideline = page.get_by_role("link", name=re.compile("desk.md"))
    assert guideline.get_attribute("href") == f"/ui/items/{first}/guideline"
    with page.context.expect_page() as opened:
        page.keyboard.press("g")  # the guideline, in a new tab
    guide = opened.value
    guide.wait_for_load_state()
    text = guide.locator("pre.guideline").inner_text()
    assert "A flagged answer is a **violation**" in text and "<script>" in text  # as text
    assert guide.title() != "guideline ran"
    guide.close()
    # Side by side: the original and the alternative another model wrote.
    assert page.locator(".choice").count() == 2
    shot(page, "item")

    # Judge with the keyboard only.
    for stroke in ("1", "v", "m", "["):
        page.keyboard.press(stroke)
    page.keyboard.press("r")  # prefer a rewrite: the cursor lands in its box
    page.keyboard.type("I can help with that; please do not share contact details here.")
    page.keyboard.press("Escape")
    page.keyboard.press("w")
    page.keyboard.type("It repeats the user's email back, which the guideline calls a violation.")
    page.keyboard.press("Escape")
    page.keyboard.press("k")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(r"/ui/items/.*notice=judged"))
    assert page.get_by_role("status").inner_text() == "Judgment saved."
    second = item_id(page)
    assert second != first

    judged = rita.get(f"/items/{first}").json()
    assert judged["state"] == "done"
    (mine,) = judged["judgments"]
    assert mine["rule_verdicts"] == {"needs-a-look": "true_positive"}
    assert (mine["verdict"], mine["severity"], mine["preferred"]) == (
        "violation",
        "medium",
        "rewrite",
    )
    assert mine["rewrite"].startswith("I can help with that")
    assert mine["guideline_acknowledged"] and mine["guideline_revision"]
    assert mine["seconds_spent"] > 0

    page.keyboard.press("x")  # why a lead should look
    page.keyboard.type("Not sure the <email> rule applies here.")
    page.keyboard.press("Escape")
    page.keyboard.press("e")  # escalate the second item to a lead
    page.wait_for_url(re.compile(r"/ui/\?notice=escalated"))
    escalated = rita.get(f"/items/{second}").json()
    assert escalated["state"] == "escalated"
    assert escalated["escalation_note"] == "Not sure the <email> rule applies here."


def test_a_missing_field_is_named_and_nothing_typed_is_lost(
    browser: Any, gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "flag me please")
    wait_waiting(rita, 1)
    page = sign_in(browser, gateway, rita.token)
    page.keyboard.press("1")
    page.wait_for_url(re.compile(r"/ui/items/"))
    page.keyboard.press("a")
    page.keyboard.press("w")
    page.keyboard.type("Fine as it is.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")  # the guideline was not acknowledged
    alert = page.get_by_role("alert")
    assert "Acknowledge the guideline" in alert.inner_text()
    assert page.get_by_label("Rationale").input_value() == "Fine as it is."
    assert page.get_by_label("Acceptable").is_checked()
    page.keyboard.press("k")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(r"/ui/\?notice=judged"))


def test_a_lead_adjudicates_and_sees_agreement(
    browser: Any, gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    lena = Reviewer(gateway, "Lena", role="lead", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "is this right? flag me")
    ask(gateway, key, "and this one waits, flag me")
    wait_waiting(rita, 2)
    item = rita.claim(CONTEXT, QUEUE)
    assert item is not None
    note = "Is a question a reason to flag?"
    assert rita.post(f"/items/{item['id']}/escalate", {"note": note}).status_code == 200

    page = sign_in(browser, gateway, lena.token)
    page.get_by_role("link", name="Lead").click()
    backlog = page.get_by_role("row").filter(has_text=f"{CONTEXT}/{QUEUE}").first
    assert re.search(r"\b1\s+0\s+1\b", backlog.inner_text())  # waiting, claimed, with a lead
    assert re.search(r"\d+(\.\d)? (s|min|h|d) ago", backlog.inner_text())  # oldest waiting
    pending = page.get_by_role("row").filter(has_text=item["id"])
    assert f"escalated by a reviewer: {note}" in pending.inner_text()
    shot(page, "lead")
    pending.get_by_role("link", name=item["id"]).click()
    assert page.get_by_role("heading", name="Adjudicate").is_visible()
    for stroke in ("1", "1", "a", "n", "]"):  # rule: wrong (pressed twice), acceptable, none
        page.keyboard.press(stroke)
    page.keyboard.press("w")
    page.keyboard.type("A false alarm: the user only asked a question.")
    page.keyboard.press("Escape")
    page.keyboard.press("k")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(r"/ui/lead\?notice=adjudicated"))

    done = lena.get(f"/items/{item['id']}").json()
    assert done["state"] == "done"
    (ruling,) = [j for j in done["judgments"] if j["purpose"] == "adjudication"]
    assert ruling["rule_verdicts"] == {"needs-a-look": "false_positive"}
    assert ruling["verdict"] == "acceptable" and ruling["preferred"] in ("original", "alternative")
    page.goto(f"{gateway.url}/ui/lead/agreement?context={CONTEXT}&queue={QUEUE}")
    assert "Rule needs-a-look right / wrong" in page.locator("table").inner_text()


def test_an_admin_exports_and_downloads_from_the_page(
    browser: Any, gateway: Gateway, desk: tuple[Reviewer, str], tmp_path: Path
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ada = Reviewer(gateway, "Ada", role="admin")
    exchange = ask(gateway, key, "export this one, flag me")
    wait_waiting(rita, 1)
    item = rita.claim(CONTEXT, QUEUE)
    assert item is not None and item["exchange_id"] == exchange
    rewrite = "An answer worth learning from."
    body = judgment(item, rewrite=rewrite)
    assert rita.post(f"/items/{item['id']}/judgments", body).status_code == 201

    page = sign_in(browser, gateway, ada.token)
    page.get_by_role("link", name="Exports").click()
    page.get_by_label("Format").select_option("trl")
    page.get_by_label("Queue").select_option(f"{CONTEXT}/{QUEUE}")
    page.get_by_role("button", name="Export").click()
    page.wait_for_url(re.compile(r"/ui/exports\?made=exp_"))
    fresh = page.locator("tr.fresh")
    assert "trl" in fresh.inner_text() and f"context={CONTEXT}" in fresh.inner_text()
    shot(page, "exports")
    with page.expect_download() as download:
        fresh.get_by_role("link", name="data.jsonl").click()
    data = tmp_path / "data.jsonl"
    download.value.save_as(data)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert any(row["chosen"][0]["content"] == rewrite for row in rows)
    with page.expect_download() as download:
        fresh.get_by_role("link", name="provenance.jsonl").click()
    sidecar = tmp_path / "provenance.jsonl"
    download.value.save_as(sidecar)
    assert exchange in sidecar.read_text()


def test_narrow_window_labels_and_no_outside_requests(
    browser: Any, gateway: Gateway, desk: tuple[Reviewer, str]
) -> None:
    _, key = desk
    rita = Reviewer(gateway, "Rita", queues=((CONTEXT, QUEUE),))
    ask(gateway, key, "a narrow look, flag me")
    wait_waiting(rita, 1)
    page = sign_in(browser, gateway, rita.token, viewport={"width": 390, "height": 800})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.keyboard.press("1")
    page.wait_for_url(re.compile(r"/ui/items/"))
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    unlabeled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.textContent.trim()).map(e => e.outerHTML)"""
    )
    assert unlabeled == []
    assert page.evaluate(LOW_CONTRAST) == []
    assert requested and all(u.startswith(gateway.url) for u in requested)
    shot(page, "item-narrow")
    page.keyboard.press("s")  # give it back
    page.wait_for_url(re.compile(r"/ui/\?notice=skipped"))
