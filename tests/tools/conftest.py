"""The tool-scope suite's gateway: the session's scoped gateway (SQLite, tests/scoped.py), which
serves this suite's contexts (tests/tools/served.py) in front of a mock upstream scripted for
what its deterministic tool rule does not do by itself: several calls in one answer, arguments
that are not JSON, a call of a tool the request never declared."""

from __future__ import annotations

import dataclasses

import pytest

from tests.scoped import Scoped
from tests.tools.served import Served


@pytest.fixture(scope="session")
def served(scoped_gateway: Scoped) -> Served:
    gateway = dataclasses.replace(scoped_gateway.gateway, key=scoped_gateway.keys["tools-remove"])
    return Served(gateway, scoped_gateway.upstream)
