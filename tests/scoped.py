"""One gateway for the suites whose contexts need policies, backends and upstream replies of
their own (tests/tools, tests/clients, tests/responses, the web tool page): ``gateway serve`` on
SQLite once per session (per xdist worker, and conftest keeps these files on one worker) in
front of one mock upstream, instead of a gateway and an upstream per module. Each suite keeps
its contexts to itself, so sharing the process changes nothing a test reads: its records, its
review queues and its exports are its context's."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.clients import served as clients
from tests.conftest import HERE, gateway_config, unit_of
from tests.responses import responses_gateway as responses
from tests.responses import stream_gateway as streams
from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    Upstream,
    scripted_upstream,
    serving_gateway,
)
from tests.tools import served as tools
from tests.web import tool_desk


@dataclass(frozen=True)
class Scoped:
    gateway: Gateway  # ``keys``: one key per context served
    upstream: Upstream
    folder: Path

    @property
    def keys(self) -> dict[str, str]:
        return self.gateway.keys


def scoped_policies() -> dict[str, str | dict[str, Any]]:
    """Every suite's contexts: the policy text or document by context."""
    tool_contexts = {name: tools.HEAD.format(context=name) + section
                     for name, section in tools.CONTEXTS.items()}
    return {
        **tool_contexts,
        clients.CONTEXT: clients.POLICY,
        tool_desk.CONTEXT: tool_desk.POLICY,
        **responses.POLICIES,
        streams.CONTEXT: streams.POLICY,
        streams.FLAGGING: streams.FLAG_POLICY,
    }


def scoped_script() -> dict[str, Any]:
    """The tests' upstream script, after the replies the suites add (none of their triggers is
    in another suite's text)."""
    base = yaml.safe_load((HERE / "upstream_script.yaml").read_text())
    added = [*tools.SCRIPT["rules"], *clients.SCRIPT["rules"], *streams.SCRIPT_RULES]
    return {**base, "rules": [*added, *base["rules"]]}


def write_policies(folder: Path, policies: Mapping[str, str | dict[str, Any]]) -> Path:
    path = folder / "policies"
    (path / "guidelines").mkdir(parents=True)
    for name, text in {**tools.GUIDELINES, **tool_desk.GUIDELINES}.items():
        (path / "guidelines" / name).write_text(text)
    for context, policy in policies.items():
        text = policy if isinstance(policy, str) else yaml.safe_dump(policy, sort_keys=False)
        (path / f"{context}.yaml").write_text(text)
    return path


def scoped_config(upstream: Upstream, folder: Path, policies: Path) -> Path:
    """The session gateway's config (tests/conftest.py) with each suite's backends and models,
    on a SQLite database in ``folder``, without the 64 KiB body limit no suite here tests."""
    path = gateway_config(upstream, folder, policies)
    data = yaml.safe_load(path.read_text())
    mock = data["backends"]["mock"]
    native = {**mock, "responses": "native"}
    data["backends"].update(
        {"mock-native": native, "chat": mock, "native": native,
         "bare": {**mock, "stream_usage": False}}
    )  # fmt: skip
    routes = {"native-small": "mock-native", "chat-model": "chat", "native-model": "native",
              "t-chat": "chat", "t-native": "native", streams.BARE: "bare"}
    data["models"].update(
        {name: {"backend": backend, "model": "mock-small"} for name, backend in routes.items()}
    )
    del data["max_body_bytes"]
    data["database_url"] = f"sqlite+aiosqlite:///{folder / 'scoped.db'}"
    path.write_text(yaml.safe_dump(data))
    return path


@contextmanager
def serve_scoped(folder: Path) -> Iterator[Scoped]:
    policies = scoped_policies()
    with scripted_upstream(folder, scoped_script()) as upstream:
        config = scoped_config(upstream, folder, write_policies(folder, policies))
        env = {
            "GATEWAY_DATABASE_URL": yaml.safe_load(config.read_text())["database_url"],
            "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        with serving_gateway(config, env, list(policies), cwd=folder) as (url, keys):
            first = next(iter(policies))
            gateway = Gateway(url, keys[first], env, config, "sqlite", keys, folder / "policies")
            yield Scoped(gateway, upstream, folder)


@contextmanager
def another_process(scoped: Scoped, contexts: list[str]) -> Iterator[Scoped]:
    """A second ``gateway serve`` on the same config and records, with new keys of its own."""
    config, env = scoped.gateway.config, scoped.gateway.env
    with serving_gateway(config, env, contexts, cwd=scoped.folder) as (url, keys):
        gateway = dataclasses.replace(scoped.gateway, url=url, key=keys[contexts[0]], keys=keys)
        yield Scoped(gateway, scoped.upstream, scoped.folder)


@pytest.fixture(scope="session")
def scoped_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scoped]:
    with serve_scoped(tmp_path_factory.mktemp("scoped")) as served:
        yield served



@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that every file using the scoped gateway is one work unit,
    so that process starts on one worker. (``loadgroup`` marks cannot do it: xdist 3.8 renames
    a node by its ``_nodeid``, which pytest 9 no longer reads.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    class Scheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(str(super()._split_scope(nodeid)))

    return Scheduling(config, log)
