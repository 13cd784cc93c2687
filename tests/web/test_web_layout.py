"""Every page of the reviewers' web page, in Chromium at 1280 and at 390 pixels wide: nothing
runs off the window or out of the box that holds it (where it would hide under the next
column or be cut off), with text as long as people really write it. And the keyboard after a
form fails: the focus leaves the text field, so shortcuts act rather than type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.reviewing import Reviewer, flag, judgment, wait_for_item
from tests.servers import Gateway
from tests.webpage import (
    CONTEXT,
    NARROW,
    QUEUE,
    WIDE,
    ask,
    desk_key,
    drain,
    sign_in,
    wait_waiting,
)

pytestmark = pytest.mark.timeout(300)  # a scene of several reviewers, each made by the CLI

QUALITY = ("test-context", "quality")  # two reviewers per item: disagreements reach a lead

# Text as reviewers and users write it: sentences, and a long unbroken address.
LINK = "https://help.example.com/articles/2026/how-to-reset-your-password-without-the-old-one"
LONG = (
    f"The answer sends the user to {LINK} and repeats the address they gave, which the "
    "guideline calls a violation; a better answer says where to find the form and stops there."
)

# Where the page runs wider than the window, or an element out of the box that holds it: its
# right edge past the inside of the nearest box around it that is not an inline run of text
# (a scroll container's overflow is reachable, so it is allowed when ``scrolls`` is true).
OVERFLOW = """(scrolls) => {
  const found = [];
  const width = window.innerWidth;
  const root = document.scrollingElement;
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + [...el.classList].map(c => "." + c).join("");
  if (root.scrollWidth > width) {
    const widest = [...document.querySelectorAll("body *")].filter(
      el => el.getBoundingClientRect().right + window.scrollX >= root.scrollWidth - 1);
    found.push(`page ${root.scrollWidth}px wide in ${width}px: ${widest.map(name).join(", ")}`);
  }
  const inside = box => {
    const r = box.getBoundingClientRect();
    return box.clientWidth ? r.left + box.clientLeft + box.clientWidth : r.right;
  };
  const scroller = el => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (/auto|scroll/.test(getComputedStyle(up).overflowX)) return up;
    }
    return null;
  };
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el);
    if (el.closest(".sr-only, .skip-link") || style.position === "fixed") continue;
    if (!el.getClientRects().length || style.visibility === "hidden") continue;
    const right = el.getBoundingClientRect().right;
    const text = (el.textContent || "").trim().slice(0, 30);
    if (scrolls && scroller(el)) continue;  // reachable: its scroll container is checked
    if (right > width + 0.5) {
      found.push(`${name(el)} "${text}" ends at ${Math.round(right)}px, past the window`);
      continue;
    }
    let box = el.parentElement;
    while (box && /^(inline|contents)$/.test(getComputedStyle(box).display)) {
      box = box.parentElement;
    }
    if (!box || box === document.body) continue;
    const edge = inside(box);
    if (right > edge + 0.5) {
      found.push(`${name(el)} "${text}" ends at ${Math.round(right)}px, past ` +
        `${name(box)} at ${Math.round(edge)}px`);
    }
  }
  return found.slice(0, 20);
}"""


@dataclass
class Scene:
    """People and items for every page: a reviewer holding one item and having judged
    another, a lead with a disputed item, an admin."""

    rita: Reviewer
    lena: Reviewer
    ada: Reviewer
    held: str
    judged: str
    disputed: str


def _disputed(gateway: Gateway, carol: Reviewer, dan: Reviewer) -> str:
    """An item two reviewers judged differently, with long rewrites and rationales."""
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        flag(client, f"I feel so sad and lonely today, see {LINK}")  # a feelings claim echoed
    item = wait_for_item(carol, *QUALITY)
    made = carol.post(
        f"/items/{item['id']}/judgments", judgment(item, rewrite=LONG, rationale=LONG)
    )
    assert made.status_code == 201, made.text
    while (other := dan.claim(*QUALITY)) is not None and other["id"] != item["id"]:
        assert dan.post(f"/items/{other['id']}/skip").status_code == 200
    assert other is not None, "the disputed item never reached the second reviewer"
    body = judgment(other, verdict="acceptable", preferred="original", rewrite=None, rationale=LONG)
    assert dan.post(f"/items/{item['id']}/judgments", body).status_code == 201
    return str(item["id"])


@pytest.fixture(scope="module")
def scene(gateway: Gateway) -> Iterator[Scene]:
    ada = Reviewer(gateway, "Ada Layout", role="admin")
    drain(ada)
    rita = Reviewer(gateway, "Rita Layout", queues=((CONTEXT, QUEUE), QUALITY))
    lena = Reviewer(gateway, "Lena Layout", role="lead", queues=((CONTEXT, QUEUE), QUALITY))
    key = desk_key(gateway)
    for text in (f"{LONG} mail me at rita@example.com, flag me", "a second one, flag me"):
        ask(gateway, key, text)
    wait_waiting(rita, 2)
    first = rita.claim(CONTEXT, QUEUE)
    assert first is not None
    made = rita.post(f"/items/{first['id']}/judgments", judgment(first, rewrite=LONG))
    assert made.status_code == 201, made.text
    held = rita.claim(CONTEXT, QUEUE)
    assert held is not None
    disputed = _disputed(gateway, rita, ada)
    yield Scene(rita, lena, ada, held["id"], first["id"], disputed)
    assert rita.post(f"/items/{held['id']}/skip").status_code == 200
    item = lena.get(f"/items/{disputed}").json()
    assert lena.post(f"/items/{disputed}/judgments", judgment(item)).status_code == 201
    drain(ada)


def _pages(scene: Scene) -> list[tuple[str, Reviewer | None, str]]:
    """Every page: its name, who looks at it (nobody: signed out), and its path."""
    return [
        ("sign-in", None, "/ui/login"),
        ("queues", scene.rita, "/ui/"),
        ("judge", scene.rita, f"/ui/items/{scene.held}"),
        ("correct", scene.rita, f"/ui/items/{scene.judged}"),
        ("guideline", scene.rita, f"/ui/items/{scene.held}/guideline"),
        ("not-found", scene.rita, "/ui/items/itm_none"),
        ("not-allowed", scene.rita, "/ui/lead"),
        ("item", scene.lena, f"/ui/items/{scene.held}"),
        ("lead", scene.lena, "/ui/lead"),
        ("adjudication", scene.lena, f"/ui/items/{scene.disputed}"),
        ("agreement", scene.lena, "/ui/lead/agreement"),
        ("agreement-queue", scene.lena, f"/ui/lead/agreement?context={CONTEXT}&queue={QUEUE}"),
        ("exports", scene.ada, "/ui/exports"),
        ("reviewers", scene.ada, "/ui/reviewers"),
    ]


def _signed_in(
    browser: Any, gateway: Gateway, who: Reviewer | None, viewport: dict[str, int]
) -> Any:
    if who is not None:
        return sign_in(browser, gateway, who.token, viewport)
    return browser.new_context(viewport=viewport).new_page()


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280", "390"])
def test_no_page_runs_off_the_window_or_out_of_its_box(
    browser: Any, gateway: Gateway, scene: Scene, viewport: dict[str, int]
) -> None:
    pages: dict[int, Any] = {}
    problems = {}
    for name, who, path in _pages(scene):
        key = id(who)
        if key not in pages:
            pages[key] = _signed_in(browser, gateway, who, viewport)
        page = pages[key]
        page.goto(f"{gateway.url}{path}")
        page.wait_for_load_state("networkidle")
        assert "/ui/login" not in page.url or who is None, f"{name}: signed out"
        # Wide, everything fits as it is; narrow, a data table may scroll inside its box.
        found = page.evaluate(OVERFLOW, viewport is NARROW)
        if name == "queues":  # the page's one action is in view, not scrolled away in its table
            take = page.get_by_role("button", name=re.compile("Take the next item")).first
            box = take.bounding_box()
            if box["x"] + box["width"] > viewport["width"]:
                found.append(f"'Take next' ends at {box['x'] + box['width']:.0f}px")
        if found:
            problems[name] = found
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_the_adjudication_page_names_reviewers_by_pseudonym(
    browser: Any, gateway: Gateway, scene: Scene
) -> None:
    page = sign_in(browser, gateway, scene.lena.token)
    page.goto(f"{gateway.url}/ui/items/{scene.disputed}")
    shown = page.locator("ol.judgments")
    text = shown.inner_text()
    assert "rvr_" not in text
    names = re.findall(r"annotator-[0-9a-f]{8}", text)
    assert len(set(names)) == 2, text  # the two reviewers who disagreed
    # The rationale is on screen, not under the judgment panel beside it.
    rationale = shown.locator("dd.rationale").first.bounding_box()
    side = page.locator(".item-side").bounding_box()
    assert rationale["x"] + rationale["width"] <= side["x"]
    assert LINK[:40] in shown.locator("dd.rationale").first.inner_text()


def test_a_form_that_cannot_be_sent_names_what_is_missing_and_keys_still_act(
    browser: Any, gateway: Gateway, scene: Scene
) -> None:
    page = sign_in(browser, gateway, scene.rita.token)
    page.goto(f"{gateway.url}/ui/items/{scene.held}")
    page.keyboard.press("w")  # into the rationale, and send with nothing chosen or written
    page.keyboard.press("Control+Enter")
    alert = page.locator("#form-problems")
    assert alert.inner_text() == "Not sent yet. Missing: Verdict on the exchange; Rationale."
    focused = page.evaluate("document.activeElement.id")
    assert focused == "form-problems"  # not the text area, where keys would type
    page.keyboard.press("v")
    assert page.get_by_label("Violation").is_checked()
    assert page.get_by_label("Rationale").input_value() == ""
    assert f"/ui/items/{scene.held}" in page.url  # nothing was sent
    page.keyboard.press("w")
    page.keyboard.type("Repeats the address back.")
    page.keyboard.press("Control+Enter")  # the guideline is not acknowledged: the server says so
    page.wait_for_url(f"{gateway.url}/ui/items/{scene.held}/judge")
    assert "Acknowledge the guideline" in page.get_by_role("alert").first.inner_text()
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
    page.keyboard.press("k")  # a shortcut, not a letter typed into the rationale
    assert page.get_by_label("I judged by this guideline revision").is_checked()
    assert page.get_by_label("Rationale").input_value() == "Repeats the address back."
