"""Review queues at scale, on PostgreSQL: claim-next, queue listing, and a 100,000-pair export.

Builds a fresh database with the migrations, fills it with 1,000,000 exchanges, 100,000 open
review items spread over 10 queues (the claim and listing measurements) and 100,000 judged
items with a rewrite each, finished over the last 100 days (the export), then measures in
process:

- claim-next (claim, then give the claim back) one at a time and 16 claimers at once;
- the queue listing (counts per queue);
- exporting the 100,000 pairs in TRL format: time, and the process's peak memory growth.

    GATEWAY_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        python bench/review.py
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pg import fresh_database, pct
from gateway.checks.registry import default_registry
from gateway.db.session import create_engine, create_sessions
from gateway.export.rows import ExportFilter
from gateway.policy.store import PolicyStore
from gateway.review.exporting import run_export
from gateway.review.queue import QueueService
from gateway.review.reviewers import ReviewerIdentity

EXCHANGES, OPEN_ITEMS, JUDGED_ITEMS, QUEUES = 1_000_000, 100_000, 100_000, 10

FILL = [
    f"""INSERT INTO exchanges (id, endpoint, received_at, ended_at, context, stream, status,
        http_status, gateway_version, request_body, response_body, policy_revision)
      SELECT 'ex' || g, 'chat.completions', now() - (g || ' seconds')::interval, now(), 'bench',
        false, 'ok', 200, 'bench',
        jsonb_build_object('messages', jsonb_build_array(jsonb_build_object(
          'role', 'user', 'content', 'question number ' || g))),
        jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('index', 0,
          'message', jsonb_build_object('role', 'assistant', 'content', 'answer ' || g)))),
        'rev'
      FROM generate_series(1, {EXCHANGES}) g""",
    f"""INSERT INTO review_items (id, exchange_id, context, queue, reason, rule_ids,
        policy_revision, reviewers_needed, judgments_done, state, created_at)
      SELECT 'open' || g, 'ex' || g, 'bench', 'q' || (g % {QUEUES}), 'flagged', '["r1"]',
        'rev', 1, 0, 'open', now() - (g || ' seconds')::interval
      FROM generate_series(1, {OPEN_ITEMS}) g""",
    f"""INSERT INTO review_items (id, exchange_id, context, queue, reason, rule_ids,
        policy_revision, reviewers_needed, judgments_done, state, created_at, done_at)
      SELECT 'done' || g, 'ex' || ({OPEN_ITEMS} + g), 'bench', 'q' || (g % {QUEUES}),
        'flagged', '["r1"]', 'rev', 1, 1, 'done', now() - ((g % 100) || ' days')::interval,
        now() - ((g % 100) || ' days')::interval
      FROM generate_series(1, {JUDGED_ITEMS}) g""",
    """INSERT INTO reviewers (id, name, pseudonym, token_digest, role, kind, languages,
        created_at) VALUES ('rvr_bench', 'Bench', 'annotator-bench', 'x', 'admin', 'human',
        '["en"]', now())""",
    """INSERT INTO reviewers (id, name, pseudonym, token_digest, role, kind, languages,
        created_at)
      SELECT 'c' || g, 'Claimer', 'claimer-' || g, 'x' || g, 'admin', 'human', '["en"]', now()
      FROM generate_series(0, 15) g""",
    f"""INSERT INTO judgments (id, item_id, reviewer_id, kind, purpose, rule_verdicts, verdict,
        severity, preferred_source, preferred_text, rationale, guideline_acknowledged,
        created_at)
      SELECT 'j' || g, 'done' || g, 'rvr_bench', 'human', 'review', '{{"r1": "true_positive"}}',
        'violation', 'low', 'rewrite', 'a better answer ' || g, 'bench', true, now()
      FROM generate_series(1, {JUDGED_ITEMS}) g""",
    "VACUUM ANALYZE",  # what autovacuum does in production; index-only scans rely on it
]


async def measure(url: str) -> None:
    engine = create_engine(url)
    sessions = create_sessions(engine)
    queues = QueueService(sessions)
    who = ReviewerIdentity("rvr_bench", "annotator-bench", "admin", "human", frozenset())
    claims = []
    for i in range(300):
        started = time.perf_counter()
        item = await queues.claim(who, "bench", f"q{i % QUEUES}")
        claims.append((time.perf_counter() - started) * 1000)
        assert item is not None
        await queues.release(who, item.id, escalate=False)
    print(
        f"claim-next, one claimer: p50 {statistics.median(claims):.2f} ms, "
        f"p95 {pct(claims, 0.95):.2f} ms ({len(claims)} claims)"
    )
    claimers = [
        ReviewerIdentity(f"c{i}", f"c{i}", "admin", "human", frozenset()) for i in range(16)
    ]
    together: list[float] = []

    async def one(claimer: ReviewerIdentity) -> str | None:
        started = time.perf_counter()
        item = await queues.claim(claimer, "bench", "q1")
        together.append((time.perf_counter() - started) * 1000)
        return item.id if item else None

    for _ in range(10):
        held = await asyncio.gather(*(one(c) for c in claimers))
        assert len(set(held)) == len(held), "an item was handed out twice"
        for claimer, item_id in zip(claimers, held, strict=True):
            if item_id:
                await queues.release(claimer, item_id, escalate=False)
    print(
        f"claim-next, 16 claimers at once: p50 {statistics.median(together):.2f} ms, "
        f"p95 {pct(together, 0.95):.2f} ms ({len(together)} claims, none handed out twice)"
    )
    listing = []
    for _ in range(50):
        started = time.perf_counter()
        await queues.status(who)
        listing.append((time.perf_counter() - started) * 1000)
    print(
        f"queue listing: p50 {statistics.median(listing):.2f} ms, p95 {pct(listing, 0.95):.2f} ms"
    )
    await export(sessions)
    await engine.dispose()


async def export(sessions: object) -> None:
    store = PolicyStore([], default_registry())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = await run_export(
            sessions,
            store,
            ExportFilter("trl", context="bench"),  # type: ignore[arg-type]
            Path(tmp),
            "bench",
        )
        seconds = time.perf_counter() - started
        size = (Path(tmp) / "data.jsonl").stat().st_size
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(
        f"export: {summary.records_out} TRL pairs in {seconds:.1f} s "
        f"({summary.records_out / seconds:.0f}/s), data.jsonl {size / 1e6:.1f} MB, "
        f"peak memory grew by {grown:.0f} MB"
    )


async def main() -> None:
    async with fresh_database(FILL) as url:
        await measure(url)


if __name__ == "__main__":
    asyncio.run(main())
