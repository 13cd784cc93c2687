"""What an export says about what it left out: items below their queue's reviewers_per_item,
``--include-partial``, and an export that matched nothing (exit code, stderr, a card of whole
sentences). A gateway of its own, on a fresh database, so every count is exact."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import HERE, gateway_config
from tests.databases import make_key, postgres_database, upgrade
from tests.reviewing import Reviewer, flag, judgment, wait_for_item
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, Upstream, free_port, process
from tests.webpage import Browserless

CONTEXT = "export-context"
POLICY = {
    "context": CONTEXT,
    "purpose": "Exercise what exports count and leave out.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small", "test-large"]},
    "rules": [
        {
            "id": "three-eyes",
            "stage": "input",
            "why": "Three reviewers look at this.",
            "detect": {"keywords": ["three eyes"]},
            "action": "flag",
            "review": "panel",
        },
        {
            "id": "one-eye",
            "stage": "input",
            "why": "One reviewer looks at this.",
            "detect": {"keywords": ["one eye"]},
            "action": "flag",
            "review": "solo",
        },
    ],
    "review": {
        "sample_rate": 0,
        "queues": {
            "panel": {"guidelines": "guidelines/triage.md", "reviewers_per_item": 3},
            "solo": {"guidelines": "guidelines/triage.md"},
        },
    },
}

# A sentence with a hole: a slot that was filled with nothing.
HOLES = {
    r":\s*[.,;]": "a colon followed by nothing",
    r"\(\s*\)": "empty parentheses",
    r"\bNone\b": "Python's None",
    r"\S \.(\s|$)": "a space before a full stop",
    r"(?<!`)``(?!`)": "empty code",
    r",\s*[,.]": "an empty list item",
    r"\bfrom no\b": "'from no'",
    r"\|\s*\|": "an empty table cell",
    r"[{}]": "a template brace",
}


def holes(card: str) -> list[str]:
    """Every hole in the card's prose (fenced guideline texts are quoted, not written)."""
    prose = re.sub(r"(`{3,})text\n.*?\n\1", "", card, flags=re.S)
    found = []
    for line in prose.splitlines():
        for pattern, what in HOLES.items():
            if re.search(pattern, line):
                found.append(f"{what}: {line!r}")
    return found


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('export-db') / 'situate.db'}"
        return
    base = request.getfixturevalue("postgres_url")  # skips without PostgreSQL
    with postgres_database(base, f"situate_export_{secrets.token_hex(4)}") as url:
        yield url


@pytest.fixture(scope="module")
def fresh(
    upstream: Upstream, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway whose database has seen nothing yet, serving the export context too."""
    folder = tmp_path_factory.mktemp("export-gateway")
    policies = folder / "policies"
    shutil.copytree(HERE / "policies", policies)
    (policies / f"{CONTEXT}.yaml").write_text(yaml.safe_dump(POLICY, sort_keys=False))
    config = gateway_config(upstream, folder, policies)
    env = {
        "GATEWAY_DATABASE_URL": database,
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    gateway = Gateway("", "", env, config, make_url(database).get_backend_name(), {}, policies)
    gateway.key = make_key(upgrade(database), CONTEXT, "export tests")
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        gateway.url = f"http://127.0.0.1:{port}"
        yield gateway


def export(gateway: Gateway, out: Path, *args: str) -> tuple[Any, str, str]:
    done = gateway.command("export", "preferences", "--format", "trl", "--out", str(out), *args)
    return (
        done,
        (out / "README.md").read_text() if (out / "README.md").exists() else "",
        done.stderr,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_export_that_matches_nothing_says_why_and_exits_1(
    fresh: Gateway, tmp_path: Path
) -> None:
    done, card, stderr = export(fresh, tmp_path / "empty")
    assert done.returncode == 1, done.stderr
    assert "nothing exported" in stderr.lower()
    assert "no exchange has reached review yet" in stderr
    assert "no exchange has reached review yet" in card
    assert "Nothing was exported" in card
    assert holes(card) == []
    assert (tmp_path / "empty" / "data.jsonl").read_text() == ""

    unknown, card, stderr = export(fresh, tmp_path / "unknown", "--context", "no-such-context")
    assert unknown.returncode == 1
    assert "context `no-such-context` is not served" in card and "no-such-context" in stderr
    assert holes(card) == []

    allowed, card, _ = export(fresh, tmp_path / "allowed", "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    assert "nothing exported" in allowed.stderr.lower() and holes(card) == []


def test_items_below_reviewers_per_item_are_counted_and_included_on_request(
    fresh: Gateway, tmp_path: Path
) -> None:
    panel = (CONTEXT, "panel")
    ana, ben = (Reviewer(fresh, name, queues=(panel, (CONTEXT, "solo"))) for name in ("Ana", "Ben"))
    with openai.OpenAI(base_url=fresh.v1, api_key=fresh.key, max_retries=0) as sdk:
        flag(sdk, "three eyes on this one")
        flag(sdk, "three eyes on that one")
        flag(sdk, "one eye is enough")
    # Two items of the panel queue get two of their three judgments each: four judgments.
    for reviewer in (ana, ben):
        for _ in range(2):
            item = wait_for_item(reviewer, *panel)
            made = reviewer.post(f"/items/{item['id']}/judgments", judgment(item))
            assert made.status_code == 201, made.text
    solo = wait_for_item(ana, CONTEXT, "solo")
    assert ana.post(f"/items/{solo['id']}/judgments", judgment(solo)).status_code == 201

    done, card, stderr = export(fresh, tmp_path / "finished", "--context", CONTEXT)
    assert done.returncode == 0, stderr
    assert len(lines(tmp_path / "finished" / "data.jsonl")) == 1
    assert "4 judgments on 2 unfinished items were left out" in stderr
    assert (
        "Left out: 4 judgments on 2 items that have not reached their queue's"
        " `reviewers_per_item` (2 items with 2 of 3)." in card
    ), card
    assert "`--include-partial`" in card
    assert holes(card) == []

    done, card, stderr = export(
        fresh, tmp_path / "partial", "--context", CONTEXT, "--include-partial"
    )
    assert done.returncode == 0, stderr
    provenance = lines(tmp_path / "partial" / "provenance.jsonl")
    assert len(provenance) == 5
    partial = [p for p in provenance if p["partial"]]
    assert len(partial) == 4 and {p["queue"] for p in partial} == {"panel"}
    assert all((p["item_judgments"], p["reviewers_per_item"]) == (2, 3) for p in partial)
    finished = [p for p in provenance if not p["partial"]]
    assert [(p["queue"], p["item_state"]) for p in finished] == [("solo", "done")]
    assert "Included although unfinished: 4 judgments on 2 items" in card, card
    assert "`partial: true`" in card
    assert holes(card) == []

    # Only the unfinished queue: nothing finished matched, and the card says what would.
    done, card, stderr = export(fresh, tmp_path / "panel", "--queue", "panel")
    assert done.returncode == 1
    assert "4 judgments on 2 items" in stderr and "--include-partial" in stderr
    assert "Nothing was exported" in card and holes(card) == []

    # A date window no judgment falls in.
    done, card, stderr = export(fresh, tmp_path / "old", "--until", "2001-01-01")
    assert done.returncode == 1
    assert "none of the 5 judgments" in stderr and "2001-01-01" in stderr
    assert holes(card) == []


def test_the_api_and_the_page_take_include_partial(fresh: Gateway) -> None:
    admin = Reviewer(fresh, "Export Admin", role="admin")
    without = admin.post("/exports", {"format": "trl", "context": CONTEXT, "queue": "panel"})
    assert without.status_code == 201, without.text
    body = without.json()
    assert body["records_out"] == 0
    assert "4 judgments on 2 items" in body["nothing_exported"]
    assert "`include_partial` in the API" in body["nothing_exported"]
    assert body["left_out"] == {"judgments": 4, "items": 2}
    wanted = {"format": "trl", "context": CONTEXT, "queue": "panel", "include_partial": True}
    included = admin.post("/exports", wanted)
    assert included.status_code == 201, included.text
    assert included.json()["records_out"] == 4 and included.json()["nothing_exported"] is None
    listed = admin.get("/exports").json()["data"][-1]
    assert listed["filter"]["include_partial"] is True

    session = Browserless(fresh, admin.token)
    try:
        form = {"csrf": session.csrf, "format": "trl", "scope": f"{CONTEXT}/panel"}
        empty = session.http.post("/exports", data=form)
        assert empty.status_code == 303, empty.text
        shown = session.http.get(empty.headers["location"].removeprefix("/ui")).text
        assert "Nothing was exported: of the judgments that matched, 4 judgments" in shown
        page = session.http.get("/exports").text
        assert 'name="include_partial"' in page
        made = session.http.post("/exports", data={**form, "include_partial": "on"})
        assert made.status_code == 303
        export_id = made.headers["location"].rsplit("=", 1)[1]
        sidecar = session.http.get(f"/exports/{export_id}/provenance.jsonl").text
        assert [json.loads(line)["partial"] for line in sidecar.splitlines()] == [True] * 4
    finally:
        session.close()
