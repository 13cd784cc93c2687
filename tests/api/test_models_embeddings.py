"""Models and embeddings endpoints, and the health checks."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests import spec
from tests.servers import Gateway


def test_models_lists_the_aliases_not_the_backends_ids(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    response = httpx.get(f"{gateway.v1}/models", headers={"authorization": f"Bearer {gateway.key}"})
    spec.check("ListModelsResponse", response.json())
    ids = [m.id for m in client.models.list()]
    assert ids == ["test-small", "test-large", "dead-model"]  # the policy's order
    model = client.models.retrieve("test-large")
    assert (model.id, model.owned_by) == ("test-large", "mock")


def test_models_need_a_key(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.v1}/models").status_code == 401


def test_embeddings_float_and_base64_and_record(gateway: Gateway, client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="test-small", input=["a", "b"])
    result = raw.parse()  # the SDK asks for base64 and decodes it
    assert [len(d.embedding) for d in result.data] == [8, 8]
    as_float = httpx.post(
        f"{gateway.v1}/embeddings",
        headers={"authorization": f"Bearer {gateway.key}"},
        json={"model": "test-small", "input": "a", "encoding_format": "float"},
    ).json()
    spec.check("CreateEmbeddingResponse", as_float)
    # base64 carries float32; the float encoding carries the same values at double precision
    assert as_float["data"][0]["embedding"] == pytest.approx(result.data[0].embedding, abs=1e-6)
    record = gateway.record(raw.headers["x-request-id"])
    assert (record["endpoint"], record["status"]) == ("embeddings", "ok")
    assert record["response_body"]["data"][0]["embedding_omitted"] is not None
    assert record["prompt_tokens"] is not None


def test_embeddings_without_input_is_400(gateway: Gateway) -> None:
    response = httpx.post(
        f"{gateway.v1}/embeddings",
        headers={"authorization": f"Bearer {gateway.key}"},
        json={"model": "test-small"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"


def test_health_and_readiness(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["recorder"]["ok"] and checks["config"]["ok"]
