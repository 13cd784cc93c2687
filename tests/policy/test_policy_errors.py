"""Policy errors as an operator reads them: every problem in a file, each at its file and line,
rules named by their id, through `gateway policy check` (the running gateway reports the same
text in `GET /admin/policies` and `/readyz`)."""

from __future__ import annotations

from pathlib import Path

from tests.servers import cli

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = {"GATEWAY_CONFIG": None, "GATEWAY_DATABASE_URL": None}

HEAD = """\
context: {context}
purpose: A policy with mistakes in it.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [demo-small]
"""


def check(path: Path, text: str) -> list[str]:
    """Write a policy file, run `gateway policy check` on it, return its problem lines."""
    path.write_text(text)
    result = cli(["policy", "check", str(path)], DEFAULT, cwd=ROOT)
    assert result.returncode == 1, result.stdout
    return result.stderr.strip().splitlines()


def test_bad_yaml_is_reported_at_its_line_and_in_its_file(tmp_path: Path) -> None:
    path = tmp_path / "yaml-flow.yaml"
    text = HEAD.format(context="yaml-flow") + (
        "rules:\n"
        "  - id: unclosed\n"
        "    stage: input\n"
        "    why: The flow mapping below is never closed.\n"
        "    detect: {keywords: [x]\n"  # line 11
        "    action: block\n"
    )
    (line,) = check(path, text)
    assert line.startswith(f"{path}:11: not valid YAML"), line
    assert "<unicode string>" not in line
    assert "line 11, column 13" in line  # where the mapping opened


def test_an_unterminated_quote_is_reported_where_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "yaml-quote.yaml"
    text = HEAD.format(context="yaml-quote").replace(
        "audience: the test suite", 'audience: "the test suite'
    )
    (line,) = check(path, text)
    assert line.startswith(f"{path}:4: not valid YAML"), line
    assert "<unicode string>" not in line


def test_a_rule_is_named_by_its_id(tmp_path: Path) -> None:
    path = tmp_path / "rule-ids.yaml"
    text = HEAD.format(context="rule-ids") + (
        "rules:\n"
        "  - id: first\n"
        "    stage: input\n"
        "    why: Fine.\n"
        "    detect: {keywords: [x]}\n"
        "    action: block\n"
        "  - id: no-investment-advice\n"  # line 13
        "    stage: output\n"
        "    why: Misspelt action.\n"
        "    detect: {keywords: [you should buy]}\n"
        "    action: blok\n"  # line 17
    )
    (line,) = check(path, text)
    assert line.startswith(f"{path}:17: rules[no-investment-advice].action:"), line
    assert "rules.1" not in line


def test_review_queue_errors_are_reported_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "queues.yaml"
    (tmp_path / "g.md").write_text("# Guideline\n")
    text = HEAD.format(context="queues") + (
        "rules:\n"
        "  - id: to-nowhere\n"
        "    stage: input\n"
        "    why: Names a queue that does not exist.\n"
        "    detect: {keywords: [x]}\n"
        "    action: flag\n"
        "    review: nowhere\n"  # line 13
        "  - id: to-nowhere-too\n"
        "    stage: input\n"
        "    why: So does this one.\n"
        "    detect: {keywords: [y]}\n"
        "    action: flag\n"
        "    review: elsewhere\n"  # line 19
        "review:\n"
        "  queues:\n"
        "    compliance: {guidelines: g.md}\n"
        "  default_queue: missing\n"  # line 23
    )
    lines = check(path, text)
    assert any(
        line.startswith(f"{path}:13: rules[to-nowhere].review:") and "'nowhere'" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(f"{path}:19: rules[to-nowhere-too].review:") and "'elsewhere'" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(f"{path}:23: review.default_queue:") and "'missing'" in line
        for line in lines
    ), lines
    assert not any(f"{path}:1:" in line for line in lines), lines


def test_a_bad_queue_name_is_reported_at_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "queue-name.yaml"
    (tmp_path / "g.md").write_text("# Guideline\n")
    text = HEAD.format(context="queue-name") + (
        "review:\n  queues:\n    fine: {guidelines: g.md}\n    Bad Name: {guidelines: g.md}\n"
    )
    (line,) = check(path, text)
    assert line.startswith(f"{path}:10: review.queues.Bad Name:"), line


def test_a_schema_error_does_not_hide_compile_errors(tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    text = (
        HEAD.format(context="both").replace("[demo-small]", "[demo-small, not-an-alias]")
        + "colour: blue\n"  # line 7: a schema error
        "rules:\n"
        "  - id: bad-regex\n"
        "    stage: input\n"
        "    why: An invalid pattern.\n"
        '    detect: {regex: {pattern: "([unclosed"}}\n'  # line 12: a compile error
        "    action: block\n"
        "  - id: bad-stage\n"
        "    stage: sideways\n"  # line 15: a schema error in another rule
        "    why: An invalid stage.\n"
        "    detect: {telepathy: {}}\n"  # line 17: a compile error in that rule
        "    action: flag\n"
        "review:\n"
        "  queues:\n"
        "    gone: {guidelines: no-such-file.md}\n"  # line 21
    )
    lines = check(path, text)
    assert f"{path}:7: colour: Extra inputs are not permitted" in lines, lines
    assert any(line.startswith(f"{path}:15: rules[bad-stage].stage:") for line in lines), lines
    assert any(line.startswith(f"{path}:12:") and "bad-regex" in line for line in lines), lines
    assert any(
        line.startswith(f"{path}:17:") and "unknown detector 'telepathy'" in line for line in lines
    ), lines
    assert any(line.startswith(f"{path}:6:") and "not-an-alias" in line for line in lines), lines
    assert any(
        line.startswith(f"{path}:21:") and "no-such-file.md" in line for line in lines
    ), lines
    numbers = [int(line.split(":")[1]) for line in lines]
    assert numbers == sorted(numbers), lines  # in the order of the file


def test_a_misnamed_file_is_reported_with_schema_errors(tmp_path: Path) -> None:
    path = tmp_path / "wrong-name.yaml"
    text = HEAD.format(context="right-name") + "colour: blue\n"
    lines = check(path, text)
    assert f"{path}:7: colour: Extra inputs are not permitted" in lines, lines
    assert any(
        line.startswith(f"{path}:1:") and "must be named right-name.yaml" in line for line in lines
    ), lines


def run_tests(folder: Path, cases: str) -> list[str]:
    """`gateway policy test` on the demo policy with these cases; its problem lines."""
    (folder / "demo.yaml").write_text((ROOT / "policies" / "demo.yaml").read_text())
    (folder / "guidelines").mkdir(exist_ok=True)
    for guideline in (ROOT / "policies" / "guidelines").iterdir():
        (folder / "guidelines" / guideline.name).write_text(guideline.read_text())
    (folder / "demo.tests.yaml").write_text(cases)
    result = cli(["policy", "test", str(folder)], DEFAULT, cwd=ROOT)
    assert result.returncode == 1, result.stdout
    return result.stderr.strip().splitlines()


def test_a_case_file_with_bad_yaml_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.tests.yaml"
    lines = run_tests(tmp_path, "cases:\n  - name: x\n    input: [unclosed\n  - name: y\n")
    assert len(lines) == 1 and lines[0].startswith(f"{path}:3: not valid YAML"), lines
    assert "<unicode string>" not in lines[0]


def test_case_errors_name_the_case_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.tests.yaml"
    cases = (
        "cases:\n"
        "  - name: fine\n"
        "    input: hello there\n"
        "    expect: {action: allow}\n"
        "  - name: two texts\n"  # line 5
        "    input: hello\n"
        "    output: hello\n"
        "    expect: {action: allow}\n"
        "  - name: bad action\n"
        "    input: hello\n"
        "    expect: {action: explode}\n"  # line 11
    )
    lines = run_tests(tmp_path, cases)
    assert any(
        line.startswith(f"{path}:5: cases[two texts]:") and "exactly one of input or output" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(f"{path}:11: cases[bad action].expect.action:") for line in lines
    ), lines
