"""The reviewers' web page at scale, on PostgreSQL: how long each page takes to serve.

Builds a fresh database with the migrations and fills it with 200,000 exchanges (each a
conversation with two fired rules and their spans) and 100,000 open review items over 10
queues; then serves the gateway's app in process (the whole ASGI stack: middleware,
session cookie, CSRF check, templates) and measures, as one signed-in reviewer:

- the queues page (counts over every queue, and the reviewer's own progress);
- take next (claim, a 303 to the item) and the item page it leads to;
- judging from the form (the judgment, and the claim of the next item);
- skip.

The built-in demo backend is not reachable in process, so taking an item tries to generate its
alternative answer and finds the backend refused on loopback (a failed connect, logged at
warning level and not printed here).

    GATEWAY_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        python bench/web.py
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pg import fresh_database, pct
from gateway.app import create_app
from gateway.config import default_config
from gateway.db.session import create_engine, create_sessions
from gateway.review.reviewers import ReviewerService

EXCHANGES, ITEMS, QUEUES, ROUNDS = 200_000, 100_000, 10, 100
TEXT = "Please look at my account; mail me at someone@example.com. " * 8
DECISION = """'{"verdict": "flag", "enforced": "redact", "outcomes": [
  {"rule": "r1", "stage": "input", "detector": "keywords", "action": "flag", "enforced": "flag",
   "why": "A person looks.", "evidence": [{"message": 0, "start": 7, "end": 11, "label": "k"}]},
  {"rule": "r2", "stage": "input", "detector": "pii", "action": "redact", "enforced": "redact",
   "why": "No email.", "evidence": [{"message": 0, "start": 38, "end": 57, "label": "email"}]}
]}'"""
FILL = [
    f"""INSERT INTO exchanges (id, endpoint, received_at, ended_at, context, stream, status,
        http_status, gateway_version, request_body, response_body, policy_revision, decision)
      SELECT 'ex' || g, 'chat.completions', now() - (g || ' seconds')::interval, now(), 'bench',
        false, 'ok', 200, 'bench',
        jsonb_build_object('messages', jsonb_build_array(jsonb_build_object(
          'role', 'user', 'content', '{TEXT}' || g))),
        jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('index', 0,
          'message', jsonb_build_object('role', 'assistant', 'content', 'answer ' || g)))),
        'rev', {DECISION}::jsonb
      FROM generate_series(1, {EXCHANGES}) g""",
    f"""INSERT INTO review_items (id, exchange_id, context, queue, reason, rule_ids,
        policy_revision, reviewers_needed, judgments_done, state, created_at)
      SELECT 'open' || g, 'ex' || g, 'bench', 'q' || (g % {QUEUES}), 'flagged', '["r1"]',
        'rev', 1, 0, 'open', now() - (g || ' seconds')::interval
      FROM generate_series(1, {ITEMS}) g""",
    "VACUUM ANALYZE",
]
QUEUE_LIST = ", ".join(f"q{i}: {{guidelines: g.md}}" for i in range(QUEUES))
POLICY = f"""context: bench
purpose: Measure the review page.
owner: bench@situate.invalid
audience: nobody
models: {{allow: [demo-small]}}
review:
  queues: {{{QUEUE_LIST}}}
"""


async def timed(
    runs: list[float], request: Awaitable[httpx.Response], expect: int
) -> httpx.Response:
    started = time.perf_counter()
    response = await request
    runs.append((time.perf_counter() - started) * 1000)
    assert response.status_code == expect, (response.status_code, response.text[:300])
    return response


async def one_round(
    http: httpx.AsyncClient, form: dict[str, str], i: int, runs: dict[str, list[float]]
) -> None:
    """Queues page, take next, read the item, then judge it (even rounds) or skip it."""
    await timed(runs["queues"], http.get("/"), 200)
    taken = await timed(
        runs["next"], http.post(f"/queues/bench/q{i % QUEUES}/next", data=form), 303
    )
    item = taken.headers["location"].removeprefix("/ui")
    page = await timed(runs["item"], http.get(item), 200)
    if i % 2:
        await timed(runs["skip"], http.post(f"{item}/skip", data=form), 303)
        return
    revision = re.search(r'name="guideline_revision" value="([^"]+)"', page.text)
    judgment = {
        **form,
        "rule:r1": "true_positive",
        "verdict": "violation",
        "severity": "low",
        "rationale": "bench",
        "guideline_revision": revision.group(1) if revision else "",
        "guideline_acknowledged": "on",
        "opened_at": str(time.time()),
    }
    await timed(runs["judge"], http.post(f"{item}/judge", data=judgment), 303)


async def signed_in(http: httpx.AsyncClient, token: str) -> dict[str, str]:
    login = await http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf
    await http.post("/login", data={"csrf": csrf.group(1), "token": token})
    home = await http.get("/")
    session_csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert session_csrf, home.text[:300]
    return {"csrf": session_csrf.group(1)}


async def pages(url: str, folder: Path) -> None:
    (folder / "bench.yaml").write_text(POLICY)
    (folder / "g.md").write_text("# Bench guideline\n")
    config = default_config().model_copy(
        update={"database_url": url, "policies_dir": folder, "exports_dir": folder / "exports"}
    )
    engine = create_engine(url)
    reviewers = ReviewerService(create_sessions(engine))
    reviewer, token = await reviewers.create("Bench", "reviewer")
    for i in range(QUEUES):
        await reviewers.assign(reviewer.id, "bench", f"q{i}")
    await engine.dispose()
    app = create_app(config, demo_base_url="http://127.0.0.1:9/v1")
    runs: dict[str, list[float]] = {k: [] for k in ("queues", "next", "item", "judge", "skip")}
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench/ui")
    async with app.router.lifespan_context(app), client as http:
        form = await signed_in(http, token)
        for i in range(ROUNDS):
            await one_round(http, form, i, runs)
    for name, values in runs.items():
        print(
            f"{name:>7}: p50 {statistics.median(values):6.2f} ms, p95 {pct(values, 0.95):6.2f} ms"
            f" ({len(values)} requests)"
        )


async def main() -> None:
    logging.getLogger("gateway").setLevel(logging.ERROR)
    async with fresh_database(FILL) as url:
        with tempfile.TemporaryDirectory() as tmp:
            await pages(url, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
