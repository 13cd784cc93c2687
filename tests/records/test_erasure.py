"""Erasure on each dialect: by exchange ids, by key, by retention and by a policy that now keeps
less, in batches; the content gone, the record and its entry kept, one erasure event a batch
in the same transaction, and ``audit verify`` passing afterwards."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.checks.registry import default_registry
from gateway.clock import now
from gateway.db.session import Sessions
from gateway.policy.revisions import RevisionRepository
from gateway.policy.store import PolicyStore
from gateway.records.erasure import Eraser, Who
from gateway.records.retention import Retention, kept_content
from tests.audit.chained import chain_url, postgres_chain_url, sqlite_chain_url
from tests.audit.erasing import (
    chained,
    events_of,
    new_key,
    policy_file,
    record,
    rows,
    then_verified,
    write,
)
from tests.databases import in_a_thread, sessions_on
from tests.inprocess import config_for, eventually, running

__all__ = ["chain_url", "postgres_chain_url", "sqlite_chain_url"]  # the fixtures, used by name

WHO = Who("cli:tester", "a person's request (ticket 7)")


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One set of audit keys for the module: the verifier reads every chain with them."""
    return tmp_path_factory.mktemp("audit-keys")


def test_erasing_by_id_keeps_the_record_and_the_chain_verifies(
    chain_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    setup = chained(keys_dir)
    policy = policy_file(tmp_path, "erase-ids", "{content: full}")

    async def work(sessions: Sessions) -> None:
        key = await new_key(sessions, setup.chain, policy.context)
        ids = await write(
            sessions,
            setup.chain,
            [record(policy, key, now(), f"Wilhelmina, my phone is 0176 {i}") for i in range(3)],
        )
        erased = await Eraser(sessions, setup.chain).exchanges([ids[0], ids[1], "nope"], WHO)
        assert erased == 2
        found = await rows(sessions, ids)
        for gone in ids[:2]:
            assert found[gone].request_body is None and found[gone].response_body is None
            assert found[gone].erased_at is not None
            assert found[gone].status == "ok" and found[gone].key_id == key
        assert found[ids[2]].request_body is not None and found[ids[2]].erased_at is None
        (event,) = await events_of(sessions, setup.chain.chain_id, events.ERASURE)
        assert event["actor"] == WHO.actor and event["reason"] == WHO.reason
        assert event["detail"]["scope"] == {"by": "exchange id"}
        assert sorted(event["detail"]["exchanges"]) == sorted(ids[:2])
        assert event["detail"]["count"] == 2
        assert "request_body" in event["detail"]["fields"]
        assert "Wilhelmina" not in event["leaf"] and "my phone" not in event["leaf"]
        # asked again: nothing left to erase, and no event says otherwise
        assert await Eraser(sessions, setup.chain).exchanges(ids[:2], WHO) == 0
        assert len(await events_of(sessions, setup.chain.chain_id, events.ERASURE)) == 1

    then_verified(chain_url, setup, work)


def test_erasing_a_key_in_batches_one_event_each(
    chain_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    setup = chained(keys_dir)
    policy = policy_file(tmp_path, "erase-key", "{content: full}")

    async def work(sessions: Sessions) -> None:
        key = await new_key(sessions, setup.chain, policy.context)
        other = await new_key(sessions, setup.chain, policy.context)
        mine = [record(policy, key, now(), f"mine {i}") for i in range(5)]
        kept = [record(policy, other, now(), "someone else")]
        await write(sessions, setup.chain, [*mine, *kept])
        erased = await Eraser(sessions, setup.chain, batch=2).key(key, WHO)
        assert erased == 5
        found = await rows(sessions, [r.id for r in [*mine, *kept]])
        assert all(found[r.id].request_body is None for r in mine)
        assert found[kept[0].id].request_body is not None
        batches = await events_of(sessions, setup.chain.chain_id, events.ERASURE)
        assert [e["detail"]["count"] for e in batches] == [2, 2, 1]
        assert {e["subject"] for e in batches} == {key}
        assert all(e["detail"]["scope"] == {"key_id": key} for e in batches)
        assert {i for e in batches for i in e["detail"]["exchanges"]} == {r.id for r in mine}

    then_verified(chain_url, setup, work)


def test_a_responses_record_loses_its_admitted_input_and_still_verifies(
    chain_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    setup = chained(keys_dir)
    policy = policy_file(tmp_path, "erase-notes", "{content: full}")

    async def work(sessions: Sessions) -> None:
        key = await new_key(sessions, setup.chain, policy.context)
        made = record(
            policy,
            key,
            now(),
            "call Wilhelmina on 0176 555",
            endpoint="responses",
            response_id="resp_" + key,
            response_notes={"content": "full",
                            "admitted_input": [{"text": "Wilhelmina on 0176 555"}]},
        )
        (exchange_id,) = await write(sessions, setup.chain, [made])
        assert await Eraser(sessions, setup.chain).exchanges([exchange_id], WHO) == 1
        row = (await rows(sessions, [exchange_id]))[exchange_id]
        assert row.decision["responses"] == {"content": "full"}
        assert "Wilhelmina" not in str(row.decision)

    then_verified(chain_url, setup, work)


def test_retention_erases_what_each_policy_no_longer_keeps(
    chain_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    """retention_days by age; content: none all content; content: redacted what a revision
    that kept content in full decided, not what the redacting revision recorded."""
    setup = chained(keys_dir)
    aged = policy_file(tmp_path / "a", "keep-30-days", "{content: full, retention_days: 30}")
    was_full = policy_file(tmp_path / "b", "now-none", "{content: full}")
    now_none = policy_file(tmp_path / "c", "now-none", "{content: none}")
    full_then = policy_file(tmp_path / "d", "now-redacted", "{content: full}")
    redacting = policy_file(tmp_path / "e", "now-redacted", "{content: redacted}")
    old, recent = now() - timedelta(days=31), now() - timedelta(days=29)

    async def work(sessions: Sessions) -> None:
        revisions = RevisionRepository(sessions, setup.chain)
        for compiled in (aged, was_full, now_none, full_then, redacting):
            await revisions.save(compiled)
        keys = {
            p.context: await new_key(sessions, setup.chain, p.context)
            for p in (aged, now_none, redacting)
        }
        written = {
            "old": record(aged, keys["keep-30-days"], old, "old"),
            "recent": record(aged, keys["keep-30-days"], recent, "recent"),
            "was-full": record(was_full, keys["now-none"], recent, "full once"),
            "full": record(full_then, keys["now-redacted"], recent, "full once"),
            "redacted": record(redacting, keys["now-redacted"], recent, "[phone]"),
        }
        await write(sessions, setup.chain, list(written.values()))
        retention = Retention(sessions, Eraser(sessions, setup.chain), events.GATEWAY)
        planned = await retention.plan([aged, now_none, redacting])
        assert [await retention.count(step) for step in planned] == [1, 1, 1]
        done = await retention.once([aged, now_none, redacting])
        assert [d.erased for d in done] == [1, 1, 1]
        found = await rows(sessions, [r.id for r in written.values()])
        content = {name: found[r.id].request_body is not None for name, r in written.items()}
        assert content == {
            "old": False, "recent": True, "was-full": False, "full": False, "redacted": True
        }
        erasures = await events_of(sessions, setup.chain.chain_id, events.ERASURE)
        scopes = {e["subject"]: e["detail"]["scope"] for e in erasures}
        assert scopes["keep-30-days"]["context"] == "keep-30-days"
        assert scopes["keep-30-days"]["received_before"] > old.isoformat()
        assert scopes["now-none"] == {"context": "now-none", "decided_by": None}
        erased = {e["subject"]: list(e["detail"]["exchanges"]) for e in erasures}
        assert erased["now-none"] == [written["was-full"].id]
        assert erased["now-redacted"] == [written["full"].id]
        assert erased["keep-30-days"] == [written["old"].id]
        assert {e["actor"] for e in erasures} == {"gateway"}
        assert (await retention.once([aged, now_none, redacting]))[0].erased == 0

    then_verified(chain_url, setup, work)


def test_the_periodic_pass_runs_until_cancelled(
    chain_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    setup = chained(keys_dir)
    aged = policy_file(tmp_path / "policies", "periodic", "{content: full, retention_days: 1}")
    store = PolicyStore([tmp_path / "policies"], default_registry(), ["test-small"])
    store.refresh()

    async def main() -> None:
        async with sessions_on(chain_url) as sessions:
            key = await new_key(sessions, setup.chain, aged.context)
            (first,) = await write(
                sessions, setup.chain, [record(aged, key, now() - timedelta(days=2), "a")]
            )
            retention = Retention(sessions, Eraser(sessions, setup.chain), events.GATEWAY)
            task = asyncio.create_task(retention.run(0.05, store))
            await _until_erased(sessions, first)
            (later,) = await write(
                sessions, setup.chain, [record(aged, key, now() - timedelta(days=3), "b")]
            )
            await _until_erased(sessions, later)  # the next pass, not only the first
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            erasures = await events_of(sessions, setup.chain.chain_id, events.ERASURE)
            assert [e["detail"]["count"] for e in erasures] == [1, 1]

    asyncio.run(main())


def test_kept_content_reads_a_stored_revision() -> None:
    assert kept_content("record: {content: none}\n") == "none"
    assert kept_content("record: {retention_days: 3}\n") == "full"
    assert kept_content("context: x\n") == "full"
    assert kept_content(": broken: [") == "full"


async def _until_erased(sessions: Sessions, exchange_id: str) -> None:
    for _ in range(200):
        if (await rows(sessions, [exchange_id]))[exchange_id].erased_at is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{exchange_id} was never erased")



def test_a_pass_the_database_refuses_is_skipped_not_fatal(tmp_path: Path) -> None:
    """The gateway stays ready while its database is away: the pass waits for the next."""
    aged = policy_file(tmp_path / "policies", "away", "{content: full, retention_days: 1}")
    store = PolicyStore([tmp_path / "policies"], default_registry(), ["test-small"])
    store.refresh()
    unmigrated = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"  # no tables: every query fails

    async def main() -> None:
        async with sessions_on(unmigrated) as sessions:
            retention = Retention(sessions, Eraser(sessions, None), events.GATEWAY)
            task = asyncio.create_task(retention.run(0.01, store))
            await asyncio.sleep(0.2)
            assert not task.done()  # several passes failed, the task goes on
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    assert aged.context == "away"
    asyncio.run(main())


def test_the_gateway_runs_the_pass_every_purge_seconds(tmp_path: Path) -> None:
    """The app's lifespan starts the pass (in this process: the wiring is what is tested)."""
    config = config_for(
        tmp_path, audit={"keys_dir": str(tmp_path / "keys"), "purge_seconds": 0.05}
    )
    policy = policy_file(tmp_path / "policies", "purged", "{content: full, retention_days: 1}")
    chain = AuditChain.from_config(config.audit)

    async def old_record() -> str:
        async with sessions_on(config.database_url) as sessions:
            key = await new_key(sessions, chain, policy.context)
            (made,) = await write(
                sessions, chain, [record(policy, key, now() - timedelta(days=2), "old")]
            )
            return made

    exchange_id = asyncio.run(old_record())
    async def erased_at() -> object:
        async with sessions_on(config.database_url) as sessions:
            return (await rows(sessions, [exchange_id]))[exchange_id].erased_at

    with running(config) as (_, state):
        eventually(lambda: in_a_thread(lambda: asyncio.run(erased_at())))
        status = state.services.supervisor.status()["retention"]
        assert status["running"] and status["error"] is None
