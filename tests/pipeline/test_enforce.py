"""Output rules on whole answers with several choices, and records that keep content redacted."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.checks.registry import default_registry
from gateway.config.sections import RecordingConfig
from gateway.db import migrate
from gateway.db.models import Exchange
from gateway.db.session import create_engine, create_sessions
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.output import OutputStage
from gateway.policy.decision import Decision
from gateway.policy.loader import load_policy
from gateway.records.recorder import ExchangeRecorder

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def choice(index: int, text: str) -> dict[str, Any]:
    return {
        "index": index,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": text},
        "logprobs": {"content": [{"token": text, "logprob": -0.1}]},
    }


def test_a_block_in_one_choice_does_not_let_another_choices_redaction_through() -> None:
    policy = load_policy(
        POLICIES / "test-context.yaml",
        default_registry(),
        ["test-small", "test-large", "dead-model"],
    )
    answer = {
        "choices": [
            choice(0, "here is the secret recipe"),
            choice(1, "call me on +1 415 555 0123 today"),
            choice(2, "nothing to see"),
        ]
    }
    decision = Decision(policy.revision, policy.context)
    assert OutputStage(policy, decision, disclose=False).answer(answer)
    first, second, third = answer["choices"]
    assert first["finish_reason"] == "content_filter"
    assert first["message"]["content"] == "That is not something I can share."
    assert second["message"]["content"] == "call me on [phone] today"
    assert first["logprobs"] is None and second["logprobs"] is None  # tokens spell it out
    assert third["logprobs"] is not None
    enforced = {o.rule: o.enforced for o in decision.outcomes}
    assert enforced == {"no-secret-recipe": "block", "phone-out": "redact"}


def test_one_record_postgres_refuses_does_not_spill_its_batch(
    tmp_path: Path, postgres_url: str
) -> None:
    migrate.upgrade(postgres_url)

    async def main() -> tuple[ExchangeRecorder, list[Any]]:
        engine = create_engine(postgres_url)
        sessions = create_sessions(engine)
        recorder = ExchangeRecorder(sessions, RecordingConfig(retries=0, spill_dir=tmp_path))
        recorder.start()
        prefix = "nul-" + os.urandom(4).hex()
        for i in range(5):
            text = "a\x00b" if i == 2 else f"fine {i}"
            recorder.submit(
                ExchangeRecord(
                    id=f"{prefix}-{i}",
                    endpoint="chat.completions",
                    request_body={"messages": [{"content": text}]},
                )
            )
        await recorder.stop()
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(Exchange).where(Exchange.id.startswith(prefix)).order_by(Exchange.id)
                )
            )
        await engine.dispose()
        return recorder, rows

    recorder, rows = asyncio.run(main())
    assert len(rows) == 5 and recorder.stats.spilled == 0
    assert rows[2].request_body["messages"][0]["content"] == "a\ufffdb"
    assert not list(tmp_path.glob("*.jsonl"))
