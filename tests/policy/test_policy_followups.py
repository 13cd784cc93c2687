"""Follow-ups of issue 9 on the policies and their loader, as an operator meets them.

- A redacted record of the coding assistant keeps no private key (the whole PEM block is the
  secret, not its header), and the kids' tutor's keeps no home address (the place the child
  typed after "I live at"), through a running gateway and the SDK.
- A duplicate YAML key, at any depth, is an error at its file and line (not a silent
  replacement), in policy files and in test case files alike.
- The scope's evidence on a record says that no topic is near, as `policy explain` does,
  rather than ``nearest:None``.
- `gateway keys create` accepts a context served from its last good revision in the database
  because its file is broken, as ``POST /admin/keys`` does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.checks.base import CheckConfigError
from gateway.checks.regex import RegexCheck
from tests.databases import make_keys, upgrade
from tests.policy.test_policy_restart import BROKEN, POLICY, Start, first_run, start  # noqa: F401
from tests.records.test_redaction import bank_config
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, Upstream, cli, free_port, process

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = {"GATEWAY_CONFIG": None, "GATEWAY_DATABASE_URL": None}
CONTEXTS = ("coding-assistant", "kids-tutor")

KEY_BODY = [
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
]
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(KEY_BODY) + "\n-----END RSA PRIVATE KEY-----"
ADDRESS = "14 Oak Road, Leeds LS6 2AB"


@pytest.fixture(scope="module")
def examples(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway serving the coding assistant's and the kids' tutor's policies as checked in."""
    folder = tmp_path_factory.mktemp("followups")
    policies = folder / "policies"
    policies.mkdir()
    for context in CONTEXTS:
        shutil.copy(ROOT / "policies" / f"{context}.yaml", policies)
    shutil.copytree(ROOT / "policies" / "guidelines", policies / "guidelines")
    config = bank_config(upstream, folder, policies)
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'followups.db'}",
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    keys = make_keys(upgrade(env["GATEWAY_DATABASE_URL"]), list(CONTEXTS))
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        url = f"http://127.0.0.1:{port}"
        yield Gateway(url, keys[CONTEXTS[0]], env, config, "sqlite", keys, policies)


def send(examples: Gateway, context: str, text: str) -> str:
    """One chat through the SDK on a context; the id of its exchange (also when refused)."""
    with openai.OpenAI(base_url=examples.v1, api_key=examples.keys[context], max_retries=0) as sdk:
        try:
            raw = sdk.chat.completions.with_raw_response.create(
                model="demo-small", messages=[{"role": "user", "content": text}]
            )
        except openai.APIStatusError as exc:
            return exc.response.headers["x-request-id"]
    return raw.headers["x-request-id"]


def test_a_pasted_private_key_leaves_no_key_material_in_the_record(examples: Gateway) -> None:
    question = f"Why does ssh reject this key?\n{PEM}\nIt worked yesterday."
    record = examples.record(send(examples, "coding-assistant", question))
    assert record["status"] == "blocked"
    kept = record["request_body"]["messages"][0]["content"]
    assert kept == "Why does ssh reject this key?\n[private key removed]\nIt worked yesterday."
    whole = json.dumps(record)
    assert not any(line[:20] in whole for line in KEY_BODY)
    assert "PRIVATE KEY-----" not in whole
    removed = record["decision"]["removed_from_record"]
    assert [(r["rule"], r["label"]) for r in removed] == [("private-keys-in", "private_key")]


def test_a_key_pasted_without_its_end_line_is_removed_to_the_end(examples: Gateway) -> None:
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(KEY_BODY[:2])
    record = examples.record(send(examples, "coding-assistant", f"Is this valid? {cut}"))
    assert record["request_body"]["messages"][0]["content"] == (
        "Is this valid? [private key removed]"
    )
    assert KEY_BODY[1][:20] not in json.dumps(record)


def test_a_home_address_leaves_no_address_in_the_record(examples: Gateway) -> None:
    question = f"I live at {ADDRESS}. Can you help me add fractions for my maths homework?"
    record = examples.record(send(examples, "kids-tutor", question))
    kept = record["request_body"]["messages"][0]["content"]
    # The safeguarding reviewer still reads that the child gave where they live.
    assert kept == "I live at [private]. Can you help me add fractions for my maths homework?"
    whole = json.dumps(record)
    assert "Oak Road" not in whole and "LS6" not in whole and "Leeds" not in whole
    assert "home-address-in" in record["decision"]["flagged"]


def test_a_school_name_is_removed_too(examples: Gateway) -> None:
    question = "My school is St Mary's Primary in Leeds! What is a noun in a story?"
    record = examples.record(send(examples, "kids-tutor", question))
    kept = record["request_body"]["messages"][0]["content"]
    assert kept == "My school is [private]! What is a noun in a story?"


def test_a_regex_group_is_the_finding_and_must_exist() -> None:
    check = RegexCheck(
        {"pattern": r"i live at (?P<place>[^.]+)|(x)", "flags": "i", "group": "place"}
    )
    text = "I live at 14 Oak Road. x"
    assert [text[f.start : f.end] for f in check.find(text)] == ["14 Oak Road"]
    with pytest.raises(CheckConfigError, match="the pattern has no group 'street'"):
        RegexCheck({"pattern": r"(?P<place>x)", "group": "street"})
    with pytest.raises(CheckConfigError, match="no group 2"):
        RegexCheck({"pattern": r"(x)", "group": 2})


def test_a_record_names_the_nearest_topic_as_explain_does(examples: Gateway) -> None:
    text = "which cryptocurrency wallet should grandpa choose"
    record = examples.record(send(examples, "kids-tutor", text))
    [scope] = [o for o in record["decision"]["outcomes"] if o["rule"] == "scope.topic"]
    [label] = [e["label"] for e in scope["evidence"]]
    assert label.startswith("nearest:")
    assert "None" not in json.dumps(record["decision"])
    args = ["policy", "explain", "--context", "kids-tutor", text]
    explained = cli(args, DEFAULT, cwd=ROOT)
    topic = label.removeprefix("nearest:")
    assert f"scope: nearest topic '{topic}'" in explained.stdout, explained.stderr
    assert "out of scope (refuse)" in explained.stdout


HEAD = """\
context: {context}
purpose: A policy with duplicate keys in it.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [demo-small]
"""
RULE = """\
  - id: {id}
    stage: input
    why: A rule.
    detect: {{keywords: [{id}]}}
    action: {action}
"""


def problems(command: str, path: Path) -> list[str]:
    result = cli(["policy", command, str(path)], DEFAULT, cwd=ROOT)
    assert result.returncode == 1, result.stdout
    return result.stderr.strip().splitlines()


def test_a_second_rules_key_is_an_error_not_a_replacement(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        HEAD.format(context="twice")
        + "rules:\n"  # line 7
        + RULE.format(id="first", action="block")
        + "rules:\n"  # line 13
        + RULE.format(id="second", action="flag")
    )
    assert problems("check", path) == [
        f"{path}:13: rules: duplicate key (first at line 7); YAML would keep only the last one"
    ]


def test_duplicate_keys_at_any_depth_are_named_by_their_path(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(
        HEAD.format(context="deep")
        + "  allow: [demo-large]\n"  # line 7, under models
        + "rules:\n"
        + RULE.format(id="no-apples", action="block")
        + "    action: flag\n"  # line 14
        + "review:\n"
        + "  queues:\n"
        + "    q: {guidelines: a.md, guidelines: b.md}\n"  # line 17
    )
    found = problems("check", path)
    dup = "duplicate key (first at line {}); YAML would keep only the last one"
    assert f"{path}:7: models.allow: {dup.format(6)}" in found
    assert f"{path}:14: rules[no-apples].action: {dup.format(13)}" in found
    assert f"{path}:17: review.queues.q.guidelines: {dup.format(17)}" in found


def test_a_gateway_refuses_a_file_with_a_duplicate_key(examples: Gateway) -> None:
    path = examples.policies / "dupes.yaml"
    path.write_text(HEAD.format(context="dupes") + "context: dupes\n")
    try:
        deadline = time.monotonic() + 10
        while str(path) not in (errors := examples.admin("/policies").json()["errors"]):
            assert time.monotonic() < deadline, errors
            time.sleep(0.1)
        assert f"{path}:7: context: duplicate key (first at line 1)" in errors[str(path)]
    finally:
        path.unlink()


def test_a_case_file_with_a_duplicate_key_is_an_error(tmp_path: Path) -> None:
    policy = tmp_path / "cased.yaml"
    policy.write_text(
        HEAD.format(context="cased") + "rules:\n" + RULE.format(id="x", action="block")
    )
    (tmp_path / "cased.tests.yaml").write_text(
        "cases:\n"
        "  - name: a case\n"
        "    input: x marks the spot\n"
        "    expect: {action: block}\n"
        "    expect: {action: allow}\n"  # line 5
    )
    found = problems("test", policy)
    assert any(
        f"{tmp_path / 'cased.tests.yaml'}:5: cases[a case].expect: duplicate key (first at line 4)"
        in line
        for line in found
    ), found


def test_keys_create_accepts_a_context_served_from_its_last_good_revision(
    start: tuple[Start, Path],  # noqa: F811
    database_url: str,
) -> None:
    run, policies = start
    path = policies / "restart-context.yaml"
    good, _ = first_run(run, path)
    path.write_text(BROKEN)
    made = keys_create(policies, database_url, "restart-context")
    assert made.returncode == 0, made.stderr
    assert (
        f"note: context 'restart-context' is served from its last good revision {good[:12]}"
        f" in the database because its file {path} is broken" in made.stderr
    )
    assert f"{path}:14: not valid YAML" in made.stderr  # and where it is broken
    with run() as gateway:
        # The new key works on a gateway serving that revision: apples are still blocked.
        answered = gateway.chat(made.stdout.strip(), "I like apples")
        assert answered.status_code == 400, answered.text
        assert "no-apples" in answered.text


def test_keys_create_still_refuses_a_context_never_served(
    start: tuple[Start, Path],  # noqa: F811
    database_url: str,
) -> None:
    _, policies = start
    (policies / "never-good.yaml").write_text("context: never-good\npurpose: [unclosed\n")
    made = keys_create(policies, database_url, "never-good")
    assert made.returncode == 1
    assert "no deployment context 'never-good' is served" in made.stderr
    assert "has no stored revision" in made.stderr


def keys_create(
    policies: Path, database_url: str, context: str
) -> subprocess.CompletedProcess[str]:
    config = policies.parent / "gateway.yaml"  # where the start fixture writes it
    args = ["keys", "create", "--context", context, "--name", "cli", "--config", str(config)]
    return cli(args, {"GATEWAY_DATABASE_URL": database_url})
