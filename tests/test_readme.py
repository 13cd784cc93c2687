"""The README, followed line by line as a newcomer would, on a fresh folder: so it cannot rot.

Every ``sh`` and ``python`` sample runs in order in one shell session (exports carry over) in a
folder laid out like a fresh clone (the example policies, ``.venv`` standing for the project
venv), against ``gateway serve`` as the README starts it, on a free port instead of 8080. What
a person does by hand is done the same way here:
- an id the README writes as ``req_…`` or ``rvr_…`` is the one the commands before printed;
- judging the item in the web page is done through the reviewers' API the page uses.
Only what needs the network is not run: ``python3 -m venv`` and ``pip install`` (the project
venv stands in; the test checks instead that they install every module the samples import),
and the README's test command, which is CI itself.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.config import GatewayConfig
from tests.servers import environment, free_port, wait_until_up

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"\b(req|rvr)_…")
PIP_INSTALL = re.compile(r"(^|/|\s)pip install\s")


@dataclass(frozen=True)
class Sample:
    lang: str
    code: str
    after: str  # the README text just before it

    @property
    def is_test_command(self) -> bool:
        return self.after.rstrip().endswith("<!-- test-command -->")


def samples() -> list[Sample]:
    return [
        Sample(m[1], m[2], README[max(0, m.start() - 200) : m.start()])
        for m in FENCE.finditer(README)
    ]


def _commands(code: str) -> list[str]:
    """One string per shell command: continued lines and quotes spanning lines kept whole."""
    commands, buffer = [], ""
    for line in code.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buffer += line + "\n"
        if line.endswith("\\") or not _complete(buffer):
            continue
        commands.append(buffer.strip())
        buffer = ""
    assert not buffer, f"unterminated command: {buffer}"
    return commands


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quote still open
        return False
    return True


def _chain(command: str) -> list[str]:
    return [part.strip() for part in command.split(" && ")]


def _needs_network(command: str) -> bool:
    return command.startswith("python3 -m venv") or PIP_INSTALL.search(command) is not None


# ---- what the install commands promise ---------------------------------------------------


def _installed_by_readme() -> set[str]:
    """Distributions the README's own install lines bring (outside the test command)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    for sample in samples():
        if sample.lang != "sh" or sample.is_test_command:
            continue
        for command in (c for line in _commands(sample.code) for c in _chain(line)):
            if PIP_INSTALL.search(command) is None:
                continue
            for arg in shlex.split(command.split("pip install", 1)[1]):
                if arg in ("-e", "-q") or arg.startswith("-"):
                    continue
                if arg == ".":
                    names |= {_name(d) for d in project["dependencies"]}
                else:
                    names.add(_name(arg))
    return names


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_install_commands_install_what_the_samples_import() -> None:
    installed = _installed_by_readme()
    assert "openai" in installed  # the SDK sample's own install line
    providers = importlib.metadata.packages_distributions()
    for sample in samples():
        if sample.lang != "python":
            continue
        for module in re.findall(r"^(?:from|import) (\w+)", sample.code, re.MULTILINE):
            if module in sys.stdlib_module_names:
                continue
            dists = {_name(d) for d in providers.get(module, [])}
            assert dists & installed, f"{module} is imported but no README command installs it"


def test_every_config_sample_is_a_valid_config() -> None:
    configs = [s for s in samples() if s.lang == "yaml" and s.code.startswith("# gateway.yaml")]
    assert configs
    for sample in configs:
        GatewayConfig.model_validate(yaml.safe_load(sample.code))


# ---- following the README ----------------------------------------------------------------


@dataclass
class Session:
    home: Path
    port: int
    state: Path
    output: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fill(self, code: str) -> str:
        """The README's text as a person would type it here: this port, the ids shown."""
        code = code.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        return PLACEHOLDER.sub(lambda m: self._last(m[1]), code)

    def _last(self, prefix: str) -> str:
        found = re.findall(rf"\b{prefix}_[0-9a-f]{{8,}}\b", "\n".join(self.output))
        assert found, f"no {prefix}_ id printed before it is needed"
        return found[-1]

    def sh(self, command: str) -> str:
        script = f"set -euo pipefail\nsource {self.state}\n{command}\nexport -p > {self.state}\n"
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.home,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.output += [done.stdout, done.stderr]
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def python(self, code: str) -> str:
        path = self.home / "sample.py"
        path.write_text(code)
        return self.sh(".venv/bin/python sample.py")

    def env_value(self, name: str) -> str:
        return self.sh(f'printf %s "${name}"')


def _env() -> dict[str, str]:
    return environment({"GATEWAY_CONFIG": None, "GATEWAY_DATABASE_URL": None, "VIRTUAL_ENV": None})


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A fresh clone's folder, with the README's first command running in it."""
    home = tmp_path_factory.mktemp("clone")
    shutil.copytree(REPO / "policies", home / "policies")
    (home / ".venv").symlink_to(Path(sys.prefix))
    state = home / ".state.sh"
    state.write_text("")
    first = samples()[0]
    (line,) = _commands(first.code)
    (serve,) = [c for c in _chain(line) if not _needs_network(c)]
    assert serve == ".venv/bin/gateway serve"
    port = free_port()
    log = home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*shlex.split(serve), "--port", str(port)],
            cwd=home,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/readyz", proc, log)
            yield Session(home, port, state)
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _judge_in_the_page(session: Session) -> None:
    """What the reviewer does at /ui/: take the next item of the queue and judge it."""
    token = session.env_value("REVIEWER_TOKEN")
    headers = {"authorization": f"Bearer {token}"}
    claimed = httpx.post(
        f"{session.base}/review/queues/bank-support/security/claim", headers=headers, timeout=30
    )
    assert claimed.status_code == 200, claimed.text
    item = claimed.json()
    assert item["rule_ids"] and "prompt-injection" in item["rule_ids"]
    judged = httpx.post(
        f"{session.base}/review/items/{item['id']}/judgments",
        headers=headers,
        json={
            "verdict": "acceptable",
            "rule_verdicts": {rule: "true_positive" for rule in item["rule_ids"]},
            "rationale": "An instruction override: refusing it is right.",
            "guideline_revision": item["guideline_revision"],
            "guideline_acknowledged": True,
        },
        timeout=30,
    )
    assert judged.status_code == 201, judged.text


@pytest.mark.timeout(300)  # every sample as its own command: about 50 s alone, more under load
def test_the_readme_runs_as_written(session: Session) -> None:
    ran = []
    for sample in samples()[1:]:
        if sample.is_test_command or sample.lang not in ("sh", "python"):
            continue
        if sample.lang == "python":
            ran.append((sample.code, session.python(session.fill(sample.code))))
            continue
        for command in _commands(sample.code):
            if _needs_network(command):
                continue
            if "export preferences" in command:
                _judge_in_the_page(session)
            ran.append((command, session.sh(session.fill(command))))
    _check(dict(ran))


def _check(ran: dict[str, str]) -> None:
    """What each step should have shown the newcomer."""

    def output(fragment: str) -> str:
        (found,) = [out for command, out in ran.items() if fragment in command]
        return found

    hello = json.loads(output("Bearer $SITUATE_KEY"))
    assert "You said: Hello" in hello["choices"][0]["message"]["content"]
    assert output("chat.completions.create").startswith("Hello! This is the Situate demo backend")
    assert output("exchanges list --since 10m").count("req_") >= 3
    assert json.loads(output("exchanges show"))["context"] == "demo"
    refused = json.loads(output("reveal your system prompt"))
    assert refused["choices"][0]["finish_reason"] == "content_filter"
    assert "card-numbers-in" in output("policy explain")
    assert "harmful caught" in output("policy eval")
    assert "bank-support/security: 1 waiting" in output("review status")
    (queue,) = json.loads(output("/review/queues"))["data"]
    assert (queue["context"], queue["queue"], queue["waiting"]) == ("bank-support", "security", 1)
    exported = json.loads(output("export preferences"))
    assert exported["records_out"] == 1, exported
    agent = output("responses.create")  # the transfer over its limit, taken out and refused
    assert agent.startswith("incomplete") and "can't do that from this chat" in agent, agent


def test_the_sdk_sample_prints_the_answer_as_it_streams(session: Session) -> None:
    """Run as the README says, the sample shows the demo's words as they come, not at the end."""
    sample = next(s for s in samples() if s.lang == "python")  # the first: the SDK's
    (session.home / "stream.py").write_text(session.fill(sample.code))
    key = session.sh(".venv/bin/gateway keys create --context demo --name stream").strip()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [".venv/bin/python", "stream.py"],
        cwd=session.home,
        env={**environment({"PYTHONUNBUFFERED": None}), "SITUATE_KEY": key},  # as in a shell
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    arrivals = []
    with proc.stdout:
        while piece := os.read(proc.stdout.fileno(), 4096):
            arrivals.append((time.perf_counter() - started, piece))
    assert proc.wait(timeout=60) == 0
    total = time.perf_counter() - started
    text = b"".join(piece for _, piece in arrivals).decode()
    assert text.startswith("Hello! This is the Situate demo backend")
    assert len(arrivals) >= 10, arrivals
    streaming = arrivals[-1][0] - arrivals[0][0]  # from the first words printed to the last
    assert streaming > 1.0, f"printed within {streaming:.2f}s of {total:.2f}s"
