"""/docs and /redoc work offline: every script, style sheet and icon comes from the gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import free_port, process
from tests.webpage import shot

CLEAN_ENV: dict[str, str | None] = {"GATEWAY_DATABASE_URL": None, "GATEWAY_CONFIG": None}
ASSET = re.compile(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("docs")
    port = free_port()
    with process(
        ["serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        folder / "serve.log",
        cwd=folder,
        env=CLEAN_ENV,
    ):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_pages_load_nothing_from_elsewhere(base: str, page: str) -> None:
    html = httpx.get(base + page)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "http://" not in html.text and "https://" not in html.text  # no CDN, no fonts
    assets = [a or b for a, b in ASSET.findall(html.text)]
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = httpx.get(base + asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000 or asset.endswith(".json"), asset


def test_swagger_ui_asks_no_validator_abroad(base: str) -> None:
    html = httpx.get(base + "/docs").text
    assert '"validatorUrl": null' in html


def test_the_schema_is_still_served(base: str) -> None:
    schema = httpx.get(base + "/openapi.json")
    assert schema.status_code == 200
    assert "/v1/chat/completions" in schema.json()["paths"]


@pytest.mark.parametrize(
    ("page", "shown"),
    [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")],
)
def test_the_pages_render_in_a_browser_with_no_network(
    browser: Any, base: str, page: str, shown: str
) -> None:
    tab = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    elsewhere: list[str] = []

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:  # what a machine without the internet would do
            elsewhere.append(route.request.url)
            route.abort()

    tab.route("**/*", only_loopback)
    tab.goto(base + page)
    tab.wait_for_selector(shown, timeout=20_000)
    assert "Situate gateway" in tab.inner_text(shown)
    assert "/v1/chat/completions" in tab.content()
    assert elsewhere == []
    shot(tab, f"api{page.replace('/', '-')}")
    tab.context.close()
