"""The `openai` SDK pointed straight at a module's mock upstream (its `upstream` fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.servers import Upstream


@pytest.fixture(scope="module")
def client(upstream: Upstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="unused", max_retries=0) as c:
        yield c
