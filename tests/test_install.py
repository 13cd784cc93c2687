"""A non-editable install: the wheel, installed into its own venv, run from an empty folder.

The wheel is built from this checkout with the project venv's hatchling (no download), installed
without its dependencies into a fresh venv, which borrows them from the project venv through a
``.pth`` line placed after its own site-packages: the gateway that runs is the wheel's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.servers import free_port, wait_until_up

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ("demo", "bank-support", "kids-tutor", "coding-assistant")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    site: Path

    def run(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "gateway"), *args],
            cwd=cwd,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _clean_env() -> dict[str, str]:
    drop = ("GATEWAY_CONFIG", "GATEWAY_DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    folder = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    _run([*pip, "wheel", *offline, "-w", str(folder), str(REPO)])
    (wheel,) = folder.glob("situate-*.whl")
    target = folder / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (site / "zz_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return Installed(wheel, target / "bin", site)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "fresh"
    folder.mkdir()
    return folder


def test_the_wheel_ships_the_example_policies(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for context in EXAMPLES:
        assert f"gateway/_policies/{context}.yaml" in names
        assert f"gateway/_policies/{context}.tests.yaml" in names
    assert "gateway/_policies/guidelines/bank-security.md" in names
    assert "gateway/_migrations/env.py" in names


def test_the_installed_gateway_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    where = subprocess.check_output(
        [str(installed.bin / "python"), "-c", "import gateway; print(gateway.__file__)"],
        env=_clean_env(),
        cwd=installed.bin,
        text=True,
    )
    assert Path(where.strip()).is_relative_to(installed.site)


def test_policy_check_in_an_empty_folder_finds_the_shipped_examples(
    installed: Installed, empty: Path
) -> None:
    checked = installed.run(["policy", "check"], empty)
    assert checked.returncode == 0, checked.stderr
    found = dict(re.findall(r"^ok\s+(\S+)\s+\S+\s+(\S+)$", checked.stdout, re.MULTILINE))
    assert set(found) == set(EXAMPLES)
    assert all(Path(path).is_relative_to(installed.site) for path in found.values())
    tested = installed.run(["policy", "test"], empty)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def served(installed: Installed, empty: Path) -> Iterator[str]:
    """``gateway serve`` of the installed wheel, in an empty folder (an empty policies/ too)."""
    (empty / "policies").mkdir()  # what the old Dockerfile made: a folder with nothing in it
    port = free_port()
    log = empty / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(installed.bin / "gateway"), "serve", "--port", str(port)],
            cwd=empty,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/readyz", proc, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def test_serve_in_an_empty_folder_serves_the_demo(
    installed: Installed, empty: Path, served: str
) -> None:
    ready = httpx.get(f"{served}/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]["policies"]["contexts"]) == set(EXAMPLES)
    made = installed.run(["keys", "create", "--context", "demo", "--name", "wheel"], empty)
    assert made.returncode == 0, made.stderr
    with openai.OpenAI(
        base_url=f"{served}/v1", api_key=made.stdout.strip(), max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model="demo-small", messages=[{"role": "user", "content": "Hello"}]
        )
    assert "You said: Hello" in (reply.choices[0].message.content or "")
    assert (empty / "data" / "situate.db").is_file()
    log = (empty / "serve.log").read_text()
    assert "policies/ holds no policy file: serving the example policies shipped in" in log


def _dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_the_image_ships_the_examples_and_checks_readiness() -> None:
    text = _dockerfile()
    build, runtime = text.split("\nFROM ", 2)[1:]
    assert re.search(r"^COPY policies \./policies$", build, re.MULTILINE)  # into the wheel
    assert re.search(r"^COPY (--chown=\S+ )?policies /app/policies$", runtime, re.MULTILINE)
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*$", runtime, re.MULTILINE)
    assert "/readyz" in healthcheck
    assert "/healthz" not in healthcheck
    assert "mkdir -p /app/data /app/policies" not in runtime  # no empty folder over the examples
