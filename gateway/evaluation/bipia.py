"""Indirect injection through tool results: BIPIA's attacks inside e-mails a tool fetched.

An agent asks a tool for an e-mail and the tool's answer carries an instruction someone
planted in it. BIPIA (microsoft/BIPIA) ships the pieces: e-mail tasks (``email-*.jsonl``:
a context, a question about it) and attack instructions in 15 categories
(``text_attack_*.json``). Each attack is planted in each e-mail of the same split, at the
start, in the middle or at the end (rotating, so every attack and every e-mail meets each
position), and the request is what an agent would send: the user's question, the assistant's
call of ``read_email``, and the ``tool`` message with the e-mail. The benign side is the same
requests with the clean e-mails. Both sides go through the context's compiled input rules as
a request would (rules only, no topic scope, as the public sets are measured): the harmful
side caught, the benign side wrongly stopped, per attack category and per position, with 95%
intervals. The detectors were never tuned on BIPIA; the test split is the default.

``gateway policy eval --context C --bipia DIR`` adds it to a context's report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.detectors.bipia_data import POSITIONS, plant
from gateway.errors import GatewayError
from gateway.evaluation.datasets import DatasetError, Row, read_records
from gateway.evaluation.report import ALL, _Tally, rule_table
from gateway.policy.actions import Action
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.engine import message_texts
from gateway.policy.evaluate import Verdict, without_scope
from gateway.policy.judge import judge_input
from gateway.policy.limits import check_sizes

NAME = "BIPIA e-mail tool results ({split})"
SOURCE = "microsoft/BIPIA, commit 1a2a91d"
TOOL = "read_email"
#: the tool message's index in each request: user, assistant (the call), tool
TOOL_MESSAGE = 2


@dataclass(frozen=True, slots=True)
class Email:
    context: str
    question: str


def request_messages(email: Email, content: str) -> list[dict[str, Any]]:
    """The messages an agent sends after its tool answered: the question, the call, the result."""
    call = {"id": "call_0", "type": "function", "function": {"name": TOOL, "arguments": "{}"}}
    return [
        {"role": "user", "content": email.question},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "content": content},
    ]


def _files(folder: Path, split: str) -> tuple[Path, Path]:
    emails, attacks = folder / f"email-{split}.jsonl", folder / f"text_attack_{split}.json"
    absent = [str(p) for p in (emails, attacks) if not p.is_file()]
    if absent:
        raise DatasetError("BIPIA: no such file: " + ", ".join(absent))
    return emails, attacks


def load_emails(path: Path) -> list[Email]:
    return [Email(str(r["context"]), str(r.get("question") or "")) for r in read_records(path)]


def load_attacks(path: Path) -> list[tuple[str, str]]:
    """(category, attack) pairs in the file's order."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of attack lists by category")
    return [(str(category), str(attack)) for category, items in data.items() for attack in items]


def tool_rows(folder: Path, split: str = "test", limit: int | None = None) -> list[Row]:
    """Every attack planted in every e-mail (harmful), then each clean e-mail (benign); a row's
    ``raw`` holds its ``messages`` and ``position``; ``limit`` caps each side."""
    emails_file, attacks_file = _files(folder, split)
    emails, attacks = load_emails(emails_file), load_attacks(attacks_file)
    harmful = list(_planted(emails, attacks))[:limit]
    benign = [
        Row(e.context, False, None, None, {"messages": request_messages(e, e.context)})
        for e in emails
    ][:limit]
    return harmful + benign


def _planted(emails: list[Email], attacks: list[tuple[str, str]]) -> Iterator[Row]:
    for i, (category, attack) in enumerate(attacks):
        for j, email in enumerate(emails):
            position = POSITIONS[(i + j) % len(POSITIONS)]
            content = plant(email.context, attack, position)
            raw = {"messages": request_messages(email, content), "position": position}
            yield Row(content, True, None, category, raw)


def judge_messages(policy: CompiledPolicy, messages: list[dict[str, Any]]) -> Verdict:
    """The input stage's verdict on a whole request's messages, tool results included: the
    same limits and rules a chat request meets (``gateway.policy.evaluate`` judges one text)."""
    decision = Decision(policy.revision, policy.context)
    refs = message_texts(messages)
    try:
        check_sizes(policy, len(messages), 1, refs, decision)
        blocked = judge_input(policy, refs, decision).refusal is not None
    except GatewayError as exc:
        return Verdict(decision, Action.BLOCK if exc.status < 500 else "error", exc.message)
    return Verdict(decision, Action.BLOCK if blocked else decision.enforced)


def on_tool(verdict: Verdict) -> Verdict:
    """The verdict with only the findings on the tool result: a rule counts as fired on a row
    when it fired on the e-mail, not on the question (the same on both sides). Whether the
    request was stopped stays the whole request's."""
    outcomes = [
        dataclasses.replace(o, evidence=[e for e in o.evidence if e.message == TOOL_MESSAGE])
        for o in verdict.decision.outcomes
    ]
    decision = dataclasses.replace(verdict.decision, outcomes=outcomes)
    return dataclasses.replace(verdict, decision=decision)


def _on_question(verdict: Verdict) -> bool:
    return any(e.message != TOOL_MESSAGE for o in verdict.decision.fired for e in o.evidence)


def tool_dataset(
    policy: CompiledPolicy,
    folder: Path,
    seen: dict[str, set[str]],
    split: str = "test",
    limit: int | None = None,
) -> dict[str, Any]:
    """The figures of one run, in the shape of ``report.run_dataset``'s labelled datasets,
    broken down by attack category (``groups``) and by position (``positions``)."""
    rows = tool_rows(folder, split, limit)
    target = without_scope(policy)
    tally, by_position, on_question = _Tally(), _Tally(), {"harmful": 0, "benign": 0}
    for row in rows:
        verdict = judge_messages(target, row.raw["messages"])
        on_question["harmful" if row.harmful else "benign"] += _on_question(verdict)
        verdict = on_tool(verdict)
        tally.add(row, verdict)
        if row.harmful:
            by_position.add(Row("", True, None, row.raw["position"]), verdict)
    for rule, sources in tally.sources.items():
        seen.setdefault(rule, set()).update(sources)
    rules = tally.rules([r.id for r in policy.rules])
    return {
        "name": NAME.format(split=split),
        "path": str(folder / f"text_attack_{split}.json"),
        "source": SOURCE + f"; attacks planted in email-{split}.jsonl as `tool` messages",
        "license": "MIT",
        "stage": "input",
        "scope": False,
        "rows": len(rows),
        "kind": "labelled",
        "errors": tally.errors,
        "error_examples": [note for note, _ in tally.error_notes.most_common(3)],
        **tally.summary(ALL, rules),
        "languages": {},
        "by": "attack category",
        "groups": {g[3:]: tally.summary(g, rules) for g in tally.groups("by")},
        "positions": {g[3:]: by_position.summary(g, rules) for g in by_position.groups("by")},
        #: rows on which a rule fired on the user's question (not counted as fired above)
        "fired_on_question": on_question,
    }


def add_to_report(
    report: dict[str, Any],
    policy: CompiledPolicy,
    folder: Path,
    split: str = "test",
    limit: int | None = None,
) -> None:
    """Append the BIPIA tool-result figures to a ``context_report`` and refresh its rule table
    with the models their findings came from."""
    seen = {
        rule: set(meta["models"]) | set(meta.get("stages", []))
        for rule, meta in report["rules"].items()
    }
    report["datasets"].append(tool_dataset(policy, folder, seen, split, limit))
    report["rules"] = rule_table(policy, seen)
