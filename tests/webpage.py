"""Helpers for the web page's tests: a signed-in HTTP client, the help desk's traffic, and
Debian's Chromium driven by Playwright (with a signed-in page)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.databases import make_key
from tests.reviewing import Reviewer, judgment
from tests.reviewing import wait_waiting as waiting_in_queue
from tests.servers import Gateway

CONTEXT, QUEUE = "web-context", "desk"

CHROMIUM = "/usr/bin/chromium"
# As root on a closed network: no sandbox, and none of Chromium's own calls home.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 800}


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert found, f"no hidden field {name!r} in the page"
    return found.group(1)


class Browserless:
    """A reviewer's session through plain HTTP: cookies kept, redirects not followed."""

    def __init__(self, gateway: Gateway, token: str, http: httpx.Client | None = None) -> None:
        self.http = http or httpx.Client(base_url=f"{gateway.url}/ui", follow_redirects=False)
        login = self.http.get("/login")
        assert login.status_code == 200, login.text
        done = self.http.post(
            "/login",
            data={"csrf": hidden(login.text, "csrf"), "token": token, "next": "/ui/"},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/ui/"
        self.csrf = hidden(self.http.get("/").text, "csrf")

    def close(self) -> None:
        self.http.close()


def desk_key(gateway: Gateway) -> str:
    return make_key(gateway.database_url, CONTEXT, "web tests")


def ask(gateway: Gateway, key: str, text: str) -> str:
    """One exchange on the help desk context, through the SDK; its request id."""
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=[{"role": "user", "content": text}]
        )
    return raw.headers["x-request-id"]


def drain(admin: Reviewer) -> None:
    """Judge whatever earlier tests left open or with a lead in the desk queue, so that a test
    starts with nothing waiting (tests give back the claims they leave unjudged)."""
    while (item := admin.claim(CONTEXT, QUEUE)) is not None:
        done = admin.post(f"/items/{item['id']}/judgments", judgment(item, verdict="acceptable"))
        assert done.status_code == 201, done.text
    for item in admin.get("/adjudication").json()["data"]:
        if item["queue"] == QUEUE:
            done = admin.post(f"/items/{item['id']}/judgments", judgment(item))
            assert done.status_code == 201, done.text


def wait_waiting(reviewer: Reviewer, count: int, timeout: float = 10.0) -> None:
    """Until the desk queue has ``count`` items waiting."""
    waiting_in_queue(reviewer, CONTEXT, QUEUE, count, timeout)


@pytest.fixture
def desk(gateway: Gateway) -> Iterator[tuple[Reviewer, str]]:
    """The desk queue emptied (before and after), an admin who empties it, and a desk key."""
    admin = Reviewer(gateway, "Desk Admin", role="admin")
    drain(admin)
    yield admin, desk_key(gateway)
    drain(admin)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs it")
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        reason = f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("SITUATE_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def shot(page: Any, name: str) -> None:
    """With SITUATE_SCREENSHOTS set to a folder, a full-page screenshot of the page there."""
    folder = os.environ.get("SITUATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(browser: Any, gateway: Gateway, token: str, viewport: dict[str, int] = WIDE) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
    page.goto(f"{gateway.url}/ui/")
    assert "/ui/login" in page.url  # not signed in yet
    page.get_by_label("Reviewer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{gateway.url}/ui/")
    return page
