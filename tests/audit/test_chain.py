"""The leaf format, the keys, and the sequencer on each dialect: entries contiguous from 0,
each naming the one before, in the caller's transaction; commitments and exchange leaves
recomputed from the rows as the database gives them back."""

from __future__ import annotations

import hashlib
import hmac
import math
import stat
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select

from gateway.audit.chain import AuditChain
from gateway.audit.keys import AuditKeyError, AuditKeys
from gateway.audit.leaf import (
    EXCHANGE_FIELDS,
    NOT_CHAINED,
    ZERO_HASH,
    AuditEvent,
    entry_hash,
    event_body,
    exchange_body,
    leaf_text,
)
from gateway.config.observe import AuditConfig
from gateway.db.models import Exchange, Finding
from gateway.db.session import Sessions
from tests.audit.chained import (
    AT,
    KEYS,
    assert_whole,
    chain_of,
    chain_url,
    entries_of,
    exchange_row,
    finding_row,
    postgres_chain_url,
    sqlite_chain_url,
)
from tests.databases import run_on
from tests.servers import in_process

__all__ = ["chain_url", "postgres_chain_url", "sqlite_chain_url"]

_EXCHANGES = cast(Table, Exchange.__table__)
_FINDINGS = cast(Table, Finding.__table__)

#: the leaf of ``exchange_row("exc_known")`` with two findings, at seq 7 of chain "main",
#: written out: a change to the format shows here first
KNOWN_LEAF = (
    '{"body":{"attempts":[{"backend":"mock","seconds":0.25,"status":200}],"backend":"mock",'
    '"commit":{"decision":"47f2e1ecda6e38c9f1bf1f6169254fbf0fdb00994f03c4a7b00906a36601e6f5",'
    '"request":"4c39dacaa3c2f5467b6548e53dad538f88a5cfd14de0f2ca8b29a507f4716343",'
    '"response":"ca15472b6b295d5fe3ffbc5a0478b87be376e5a321ea98357b3424376fa7925a"},'
    '"completion_tokens":3,"context":"bank","cost":"0.000123","currency":"EUR",'
    '"decision_id":"dec_0001","ended_at":"2026-01-02T03:04:05.123456+00:00",'
    '"endpoint":"chat.completions","error_message":null,"error_type":null,'
    '"findings":[["jailbreak","classifier","input","block","block"],'
    '["pii.iban","regex","input","flag","flag"]],"first_byte_at":null,'
    '"gateway_version":"0.14.0","http_status":200,"id":"exc_known","key_id":"key_0001",'
    '"policy_revision":"rev_0001","prompt_tokens":12,'
    '"received_at":"2026-01-02T03:04:05.123456+00:00","requested_model":"test-small",'
    '"response_id":null,"response_model":"mock-small","status":"ok","stream":false,'
    '"total_tokens":15,"trace_id":"0af7651916cd43dd8448eb211c80319c",'
    '"upstream_model":"mock-small","upstream_started_at":"2026-01-02T03:04:05.123456+00:00"},'
    '"chain":"main","kind":"exchange","prev":"' + "ab" * 32 + '","seq":7,"v":1}'
)
KNOWN_HASH = "ee6671cce2129a1661a40ba938324f7793f1343315e2badd7366733dabb70734"
KNOWN_EVENT = (
    '{"body":{"actor":"cli:alice","at":"2026-01-02T03:04:05.123456+00:00",'
    '"detail":{"context":"bank"},"id":"evt_000000000000000000000001","reason":"left the team",'
    '"subject":"key_0001","type":"key.revoked"},"chain":"main","kind":"event",'
    '"prev":"' + KNOWN_HASH + '","seq":8,"v":1}'
)
KNOWN_EVENT_HASH = "cad635188c5cd603ecc90ecccda78379317d4efdf56f0175cb40fc9533c2f2a3"


def _known_findings() -> list[dict[str, Any]]:
    return [
        finding_row("exc_known", "pii.iban"),
        finding_row(
            "exc_known", "jailbreak", detector="classifier", action="block", enforced="block"
        ),
    ]


def test_an_exchange_leaf_as_written_out() -> None:
    body = exchange_body(exchange_row("exc_known"), _known_findings(), KEYS)
    leaf = leaf_text("main", 7, "ab" * 32, "exchange", body)
    assert leaf.decode() == KNOWN_LEAF
    assert entry_hash(leaf) == KNOWN_HASH == hashlib.sha256(b"\x00" + leaf).hexdigest()
    request = b'{"messages":[{"content":"Hi","role":"user"}],"model":"test-small"}'
    expected = hmac.new(bytes(range(32)), request, hashlib.sha256).hexdigest()
    assert body["commit"]["request"] == expected


def test_an_event_leaf_as_written_out() -> None:
    event = AuditEvent(
        "key.revoked",
        "cli:alice",
        "key_0001",
        "left the team",
        {"context": "bank"},
        id="evt_000000000000000000000001",
        at=AT,
    )
    leaf = leaf_text("main", 8, KNOWN_HASH, "event", event_body(event))
    assert leaf.decode() == KNOWN_EVENT
    assert entry_hash(leaf) == KNOWN_EVENT_HASH


def test_content_is_committed_to_not_copied() -> None:
    row = exchange_row("exc_secret", request_body={"messages": [{"content": "my IBAN"}]})
    body = exchange_body(row, [], KEYS)
    assert "IBAN" not in leaf_text("c", 0, "0" * 64, "exchange", body).decode()
    other = AuditKeys(bytes(32), KEYS.signing_key, "situate")
    assert other.commit(row["request_body"]) != KEYS.commit(row["request_body"])
    assert KEYS.commit(None) is None
    unanswered = exchange_body(exchange_row("e", response_body=None), [], KEYS)
    assert unanswered["commit"]["response"] is None


def test_every_exchange_column_is_chained_or_said_not_to_be() -> None:
    columns = [c.key for c in _EXCHANGES.columns]
    assert sorted(EXCHANGE_FIELDS + NOT_CHAINED) == sorted(columns)
    assert not set(EXCHANGE_FIELDS) & set(NOT_CHAINED)


def test_times_are_utc_with_microseconds_and_floats_exact() -> None:
    from datetime import timedelta, timezone

    local = AT.astimezone(timezone(timedelta(hours=2)))
    body = exchange_body(exchange_row("e", received_at=local, cost=3), [], KEYS)
    assert body["received_at"] == "2026-01-02T03:04:05.123456+00:00"
    assert body["cost"] == "3.0"
    summed = exchange_body(exchange_row("e", cost=0.1 + 0.2), [], KEYS)
    assert summed["cost"] == "0.30000000000000004"


# -- keys -------------------------------------------------------------------------------------


def test_keys_are_made_once_readable_by_their_owner_only(tmp_path: Path) -> None:
    config = AuditConfig(keys_dir=tmp_path / "keys")
    with pytest.raises(AuditKeyError, match=r"hmac\.key"):
        AuditKeys.load(config, create=False)
    made = AuditKeys.load(config, create=True)
    for name in ("hmac.key", "signing.key"):
        assert stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode) == 0o600
    again = AuditKeys.load(config, create=True)
    assert again.hmac_key == made.hmac_key and len(made.hmac_key) == 32
    assert again.public_key.public_bytes_raw() == made.public_key.public_bytes_raw()
    assert again.commit({"a": 1}) == made.commit({"a": 1})


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("hmac.key", "not hex at all\n", "not an HMAC key"),
        ("hmac.key", "abcd\n", "got 4"),
        ("signing.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PEM"),
    ],
)
def test_a_malformed_key_file_is_an_error_naming_it(
    tmp_path: Path, name: str, text: str, says: str
) -> None:
    config = AuditConfig(keys_dir=tmp_path)
    AuditKeys.load(config, create=True)
    (tmp_path / name).write_text(text)
    with pytest.raises(AuditKeyError, match=f"{tmp_path / name}.*{says}"):
        AuditKeys.load(config, create=True)


def test_a_keys_folder_that_cannot_be_made_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the folder would be")
    with pytest.raises(AuditKeyError, match=f"{tmp_path / 'taken'}: cannot make"):
        AuditKeys.load(AuditConfig(keys_dir=tmp_path / "taken"), create=True)


def test_a_signing_key_of_another_kind_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    config = AuditConfig(keys_dir=tmp_path)
    AuditKeys.load(config, create=True)
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "signing.key").write_bytes(other)
    with pytest.raises(AuditKeyError, match="must be Ed25519"):
        AuditKeys.load(config, create=True)


def test_an_unreadable_key_file_is_an_error_naming_it(tmp_path: Path) -> None:
    config = AuditConfig(keys_dir=tmp_path)
    AuditKeys.load(config, create=True)
    (tmp_path / "hmac.key").unlink()
    (tmp_path / "hmac.key").mkdir()  # there, but no file to read (root reads any mode)
    with pytest.raises(AuditKeyError, match=f"{tmp_path / 'hmac.key'}: cannot read"):
        AuditKeys.load(config, create=True)


# -- the sequencer ----------------------------------------------------------------------------


def _event(subject: str) -> AuditEvent:
    return AuditEvent("key.created", "cli:tests", subject, None, {"context": "bank"})


def test_entries_follow_one_another_from_zero(chain_url: str) -> None:
    chain = chain_of()

    async def work(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            await chain.append_event(session, _event("key_a"))
        for batch in range(3):
            rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
                (exchange_row(f"exc_{batch}_{i}"), []) for i in range(4)
            ]
            async with sessions.begin() as session:
                await chain.append_exchanges(session, rows)
        async with sessions.begin() as session:
            await chain.append_event(session, _event("key_b"))
            await chain.append_exchanges(session, [])
        entries = await assert_whole(sessions, chain.chain_id)
        assert len(entries) == 14
        assert [e.kind for e in entries[:2]] == ["key.created", "exchange"]
        assert [e.ref for e in entries[1:3]] == ["exc_0_0", "exc_0_1"]
        assert entries[-1].kind == "key.created"

    run_on(chain_url, work)


def test_an_append_rolled_back_leaves_no_trace(chain_url: str) -> None:
    chain = chain_of()

    async def rolled_back(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            await chain.append_event(session, _event("rolled back"))
            raise RuntimeError("the caller's transaction fails")

    async def work(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            await chain.append_event(session, _event("kept"))
        with pytest.raises(RuntimeError, match="fails"):
            await rolled_back(sessions)
        async with sessions.begin() as session:
            await chain.append_event(session, _event("next"))
        entries = await assert_whole(sessions, chain.chain_id)
        assert [e.leaf.count('"subject":"next"') for e in entries] == [0, 1]

    run_on(chain_url, work)


def test_two_chains_in_one_database_are_apart(chain_url: str) -> None:
    first, second = chain_of(), chain_of()

    async def work(sessions: Sessions) -> None:
        for n in range(3):
            async with sessions.begin() as session:
                await first.append_event(session, _event(f"first {n}"))
                await second.append_event(session, _event(f"second {n}"))
        assert len(await assert_whole(sessions, first.chain_id)) == 3
        assert len(await assert_whole(sessions, second.chain_id)) == 3

    run_on(chain_url, work)


def test_a_disabled_chain_appends_nothing(chain_url: str) -> None:
    chain = AuditChain("disabled-" + chain_of().chain_id, KEYS, enabled=False)

    async def work(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            await chain.append_event(session, _event("nothing"))
            await chain.append_exchanges(session, [(exchange_row("exc_off"), [])])
        assert await entries_of(sessions, chain.chain_id) == []

    run_on(chain_url, work)


def test_from_config_makes_the_keys_and_names_the_chain(tmp_path: Path) -> None:
    config = AuditConfig(keys_dir=tmp_path, chain_id="replica-2", enabled=False)
    chain = AuditChain.from_config(config)
    assert (chain.chain_id, chain.enabled, chain.keys.name) == ("replica-2", False, "situate")
    assert (tmp_path / "signing.key").exists()
    with pytest.raises(AuditKeyError):
        AuditChain.from_config(AuditConfig(keys_dir=tmp_path / "none"), create_keys=False)


# -- what the database gives back -------------------------------------------------------------

#: content every dialect stores differently from how it came: floats jsonb gives back as
#: integers, numbers no JSON allows, text PostgreSQL refuses, keys out of order
AWKWARD: list[Any] = [
    {"z": 1, "a": [1e20, 1.5e300, 0.1, -0.0, 5e-324, 1e-7, 3.0, 2**60, -(2**53)]},
    {"nan": math.nan, "inf": math.inf, "text": "nul \x00 and a lone \ud800", "é": "ü"},
    [{"b": None, "a": True}, "\U0001f600", 10**30],
    "just text",
    12.5,
]


def test_commitments_and_leaves_hold_after_the_round_trip(chain_url: str) -> None:
    chain = chain_of()
    ids = [f"exc_rt_{chain.chain_id}_{n}" for n in range(len(AWKWARD))]
    written = [
        exchange_row(
            i, key_id=None, request_body=v, response_body=v, decision={"d": v}, attempts=[v]
        )
        for i, v in zip(ids, AWKWARD, strict=True)
    ]
    findings = [[finding_row(i, "r2"), finding_row(i, "r1")] for i in ids]

    async def work(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            await session.execute(insert(_EXCHANGES), written)
            await session.execute(insert(_FINDINGS), [f for fs in findings for f in fs])
            await chain.append_exchanges(session, list(zip(written, findings, strict=True)))
        entries = await assert_whole(sessions, chain.chain_id)
        async with sessions() as session:
            for seq, exchange_id in enumerate(ids):
                row = (
                    await session.execute(select(_EXCHANGES).where(_EXCHANGES.c.id == exchange_id))
                ).one()._mapping
                found = (
                    await session.execute(
                        select(_FINDINGS).where(_FINDINGS.c.exchange_id == exchange_id)
                    )
                ).all()
                for column in ("request_body", "response_body", "decision"):
                    assert KEYS.commit(row[column]) == KEYS.commit(written[seq][column])
                body = exchange_body(dict(row), [dict(f._mapping) for f in found], KEYS)
                prev = entries[seq - 1].entry_hash if seq else ZERO_HASH
                leaf = leaf_text(chain.chain_id, seq, prev, "exchange", body)
                assert leaf.decode() == entries[seq].leaf

    run_on(chain_url, work)


@pytest.mark.parametrize(("command", "said"), [
    (["serve"], "signing.key: not an unencrypted PEM"),
    (["keys", "revoke", "key_0001"], "hmac.key: no audit key there"),  # it makes none
])
def test_a_bad_key_file_stops_a_start_or_a_command_with_one_line_naming_it(
    tmp_path: Path, command: list[str], said: str
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "signing.key").write_text("not a key\n")
    config = tmp_path / "gateway.yaml"
    config.write_text("backends: {}\nmodels: {}\n")
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'none.db'}",
        "GATEWAY_AUDIT_KEYS_DIR": str(tmp_path / "keys"),
    }
    done = in_process([*command, "--config", str(config)], env)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: {tmp_path / 'keys' / said}")
    # serve makes the missing one, never over the bad one; another command makes none
    assert (tmp_path / "keys" / "hmac.key").exists() == (command == ["serve"])
    assert (tmp_path / "keys" / "signing.key").read_text() == "not a key\n"
