"""A throwaway PostgreSQL cluster of a test's own, on a port of its own, that the test may stop,
start again and freeze (SIGSTOP) without touching the machine's cluster on 5432.

``initdb`` and ``pg_ctl`` from /usr/lib/postgresql/*/bin (or $PATH), run as the ``postgres``
user when the tests run as root (PostgreSQL refuses to run as root). Skips, saying why, when
no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

import pytest

from tests.servers import free_port


def _bin(name: str) -> str | None:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _as_owner(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@dataclass
class Cluster:
    folder: Path
    port: int
    pg_ctl: str
    frozen: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        done = subprocess.run(
            _as_owner([self.pg_ctl, "-D", str(self.folder / "data"), *args]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._ctl("-w", "-l", str(self.folder / "server.log"), "-o", options, "start")

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def _pids(self) -> list[int]:
        """The postmaster's pid and its children's (its backends), by id."""
        pidfile = self.folder / "data" / "postmaster.pid"
        postmaster = int(pidfile.read_text().splitlines()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> list[int]:
        """Stop every process of the cluster (it accepts connections and never answers)."""
        self.frozen = self._pids()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)
        return self.frozen

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("a throwaway PostgreSQL cluster needs initdb and pg_ctl (PostgreSQL's bin)")
    if os.geteuid() == 0 and not _user_exists("postgres"):
        pytest.skip("as root, a throwaway PostgreSQL cluster runs as the 'postgres' user: none")
    folder = Path(tempfile.mkdtemp(prefix="situate-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    made = subprocess.run(
        _as_owner([initdb, "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "-N"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    cluster = Cluster(folder, free_port(), pg_ctl)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.thaw()
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
