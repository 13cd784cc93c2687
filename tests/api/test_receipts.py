"""``GET /v1/receipts/{request_id}`` through a running gateway: a caller's chat completion made
with the real openai SDK, its receipt fetched with the same key and checked offline with the
verifier key the operator publishes (``gateway audit key``) and nothing else; another key's
404; a changed receipt refused (``gateway audit verify-receipt`` exits 1 saying why)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cryptography.exceptions import InvalidSignature

from gateway.audit.note import open_checkpoint, vkey
from gateway.audit.receipt import ReceiptError, verify_receipt
from gateway.records.entries import Entry
from tests.audit.chained import exchange_row
from tests.databases import make_key
from tests.inprocess import ADMIN, config_for, eventually, running, write_policy
from tests.servers import ADMIN_TOKEN, Gateway, in_process

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def _ask(client: openai.OpenAI, text: str) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="test-small", messages=[{"role": "user", "content": text}]
    )
    raw.parse()
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req_")
    return request_id


def _get(gateway: Gateway, request_id: str, key: str) -> httpx.Response:
    return httpx.get(f"{gateway.v1}/receipts/{request_id}",
                     headers={"authorization": f"Bearer {key}"}, timeout=30)


def _receipt(gateway: Gateway, request_id: str, key: str) -> dict[str, Any]:
    """The receipt, asking again while the record is pending, as a client would."""
    deadline = time.monotonic() + 15
    while True:
        response = _get(gateway, request_id, key)
        if response.status_code == 200:
            found: dict[str, Any] = response.json()
            return found
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "receipt_pending", response.text
        assert int(response.headers["retry-after"]) >= 1
        assert time.monotonic() < deadline, "the receipt stayed pending"
        time.sleep(0.05)  # sooner than Retry-After: the test's recorder is quick


@pytest.fixture(scope="module")
def published_key(gateway: Gateway) -> str:
    """The verifier key, as the operator prints it to publish."""
    done = gateway.command("audit", "key")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.count("+") >= 2
    return key


def test_a_callers_receipt_checks_out_offline(gateway: Gateway, client: openai.OpenAI,
                                             published_key: str, tmp_path: Path) -> None:
    request_id = _ask(client, "Hello, receipt")
    receipt = _receipt(gateway, request_id, gateway.key)
    assert receipt["object"] == "receipt" and receipt["request_id"] == request_id
    assert receipt["verifier_key"] == published_key
    verified = verify_receipt(receipt, published_key)
    assert verified.seq == receipt["seq"] and verified.checkpoint.size == receipt["tree_size"]
    body = verified.leaf["body"]
    assert (body["id"], body["status"], body["requested_model"]) == (request_id, "ok",
                                                                      "test-small")
    # The same receipt again: a checkpoint that covers it is there now, and is kept.
    assert _receipt(gateway, request_id, gateway.key)["checkpoint"] == receipt["checkpoint"]

    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    done = in_process(["audit", "verify-receipt", str(path), "--key", published_key], {})
    assert done.returncode == 0, done.stderr
    assert f"ok: request {request_id} is entry {receipt['seq']}" in done.stdout


def test_another_keys_exchange_has_no_receipt(gateway: Gateway, client: openai.OpenAI) -> None:
    request_id = _ask(client, "Mine alone")
    _receipt(gateway, request_id, gateway.key)  # written and chained
    other = make_key(gateway.database_url, "test-context", "another caller")
    for asked in (request_id, "req_" + "0" * 32):
        response = _get(gateway, asked, other)
        assert response.status_code == 404
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("not_found", "invalid_request_error")
        assert response.headers["x-should-retry"] == "false"
    assert _get(gateway, request_id, "sk-gw-wrong").status_code == 401


def test_a_changed_receipt_is_refused(gateway: Gateway, client: openai.OpenAI,
                                      published_key: str, tmp_path: Path) -> None:
    request_id = _ask(client, "Keep this one honest")
    receipt = _receipt(gateway, request_id, gateway.key)
    leaf = json.loads(receipt["leaf"])
    leaf["body"]["status"] = "error"  # as if the record said the call had failed
    changed = {**receipt, "leaf": json.dumps(leaf, separators=(",", ":"), sort_keys=True)}
    with pytest.raises(ReceiptError, match="does not hash"):
        verify_receipt(changed, published_key)

    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed))
    done = in_process(["audit", "verify-receipt", str(path), "--key", published_key], {})
    assert done.returncode == 1
    assert "does not check out: the leaf does not hash to leaf_hash" in done.stderr


def _documented_check() -> Any:
    """``check_receipt`` as docs/audit.md shows a client writing it."""
    section = DOCS.read_text().split("### Checking a receipt offline", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # our own documentation
    return namespace["check_receipt"]


def test_the_documented_client_check(gateway: Gateway, client: openai.OpenAI,
                                     published_key: str) -> None:
    check_receipt = _documented_check()
    receipt = _receipt(gateway, _ask(client, "Check me as the docs do"), gateway.key)
    check_receipt(receipt, published_key)
    proof = receipt["inclusion_proof"]
    for changed in (
        {**receipt, "leaf": receipt["leaf"].replace('"status":"ok"', '"status":"error"')},
        {**receipt, "inclusion_proof": [*proof, proof[0]] if proof else ["AAAA"]},
        {**receipt, "tree_size": receipt["tree_size"] + 1},
        {**receipt, "request_id": "req_" + "1" * 32},
    ):
        with pytest.raises((ValueError, InvalidSignature)):
            check_receipt(changed, published_key)


def test_an_operator_signs_a_checkpoint_now(gateway: Gateway, client: openai.OpenAI,
                                            published_key: str) -> None:
    receipt = _receipt(gateway, _ask(client, "Then a checkpoint"), gateway.key)
    done = gateway.command("audit", "checkpoint")
    assert done.returncode == 0, done.stderr
    signed = open_checkpoint(done.stdout, published_key)
    assert signed.origin == f"situate.local/audit/{receipt['chain']}"
    assert signed.size >= receipt["tree_size"]


class _Record:
    """A finished exchange's record, as the pipeline hands one over."""

    def __init__(self, request_id: str, key_id: str) -> None:
        self.id, self.key_id = request_id, key_id

    def entry(self) -> Entry:
        return Entry(row=exchange_row(self.id, key_id=self.key_id, context="pending-context"),
                     findings=[])


def test_a_record_not_yet_written_is_pending(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
    write_policy(tmp_path / "policies", "pending-context")
    audit = {"keys_dir": str(tmp_path / "keys"), "checkpoint_dir": str(tmp_path / "notes")}
    with running(config_for(tmp_path, audit=audit)) as (client, state):
        made = client.post("/admin/keys", headers=ADMIN,
                           json={"context": "pending-context", "name": "t"}).json()
        headers = {"authorization": f"Bearer {made['key']}"}
        request_id = "req_" + "a" * 32
        other = client.post("/admin/keys", headers=ADMIN,
                            json={"context": "pending-context", "name": "other"}).json()
        recorder = state.services.recorder
        recorder.begin(request_id)  # begun: its record is still to come
        recorder.made_by(request_id, made["id"])  # authenticated: this key made it
        elsewhere = client.get(f"/v1/receipts/{request_id}",
                               headers={"authorization": f"Bearer {other['key']}"})
        assert elsewhere.status_code == 404  # another key learns nothing of it, pending or not
        assert elsewhere.json()["error"]["code"] != "receipt_pending", elsewhere.text
        pending = client.get(f"/v1/receipts/{request_id}", headers=headers)
        assert pending.status_code == 404
        assert pending.json()["error"]["code"] == "receipt_pending"
        assert pending.headers["retry-after"] == "1"
        assert "x-should-retry" not in pending.headers
        state.services.recorder.submit(_Record(request_id, made["id"]))
        found = eventually(lambda: client.get(f"/v1/receipts/{request_id}", headers=headers)
                           .json().get("object") == "receipt")
        assert found
        receipt = client.get(f"/v1/receipts/{request_id}", headers=headers).json()
        keys = state.services.audit.keys
        assert verify_receipt(receipt, vkey(keys.name, keys.public_key)).seq == receipt["seq"]
        assert (tmp_path / "notes" / "main" / "latest.checkpoint").read_text() == (
            receipt["checkpoint"])
