"""Property: whatever a client sends (hostile bodies, odd headers), the gateway answers below
500 in OpenAI's error shape, and every request is on record (its ``x-request-id`` finds it).

Driven against a running gateway process on PostgreSQL, where a value the database refuses
(NaN, a lone surrogate, a long model name) once cost a record. Derandomised with a fixed number
of examples, so a CI run is the same run every time and stays within about a minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import ADMIN_TOKEN, Gateway

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
DEEP = "__deep__"

# Text with what JSON and PostgreSQL disagree on: lone surrogates, NUL, astral characters.
odd_text = st.text(max_size=40) | st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "💥" * 30, "x" * 5000, "ё" * 300]
)
numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 2**63, 1e308, "2", "1", True, False])
)
scalars = st.none() | st.booleans() | numbers | odd_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)
content_parts = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": odd_text | json_values}),
        st.fixed_dictionaries({"type": odd_text, "image_url": json_values}),
        json_values,
    ),
    max_size=4,
)
messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "system", "assistant", "tool", "robot"]),
                "content": odd_text | content_parts | json_values,
            }
        ),
        json_values,
    ),
    max_size=4,
) | json_values
fields = {
    "model": st.sampled_from(["test-small", "test-large", "dead-model"]) | odd_text | numbers,
    "messages": messages,
    "stream": st.booleans() | json_values,
    "stream_options": st.fixed_dictionaries({"include_usage": json_values}) | json_values,
    "n": numbers | json_values,
    "max_tokens": numbers | json_values,
    "max_completion_tokens": numbers,
    "temperature": numbers,
    "top_p": numbers,
    "tools": json_values | st.just(DEEP),
    "metadata": json_values | st.just(DEEP),
    "input": odd_text | st.lists(odd_text | numbers, max_size=3) | json_values,
}
turns = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant"]),
            "content": odd_text
            | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": odd_text})),
        }
    ),
    min_size=1,
    max_size=3,
)


def _merged(messages: list[Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {"model": "test-small", "messages": messages, **changes}


# Mostly a request that would be answered, with up to two fields made hostile: what reaches the
# policy, the backend and the record; now and then a body hostile throughout.
bodies = st.builds(_merged, turns, st.just({})) | st.builds(
    _merged, turns, st.fixed_dictionaries({}, optional=fields).filter(lambda d: len(d) <= 2)
) | st.fixed_dictionaries({}, optional=fields)


def encode(body: Any, depth: int) -> bytes:
    """The body as JSON text (NaN and Infinity as Python writes them, surrogates escaped),
    with ``DEEP`` replaced by arrays nested ``depth`` deep."""
    text = json.dumps(body, allow_nan=True)
    return text.replace(f'"{DEEP}"', "[" * depth + "]" * depth).encode()


raw_bodies = st.one_of(
    st.builds(encode, bodies, st.integers(min_value=1, max_value=3000)),
    st.binary(max_size=200),
    st.sampled_from(
        [b"", b"null", b"[]", b'"a"', b"{", b'{"messages": [}', b"\xff\xfe{}", b"\xef\xbb\xbf"]
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ]
)


@pytest.fixture(scope="module")
def http(postgres_gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def check_answer(response: httpx.Response, sent: list[tuple[str, int]]) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    request_id = response.headers["x-request-id"]
    sent.append((request_id, response.status_code))
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error


def check_recorded(gateway: Gateway, sent: list[tuple[str, int]], timeout: float = 30) -> None:
    """Every request sent has its record, with the status it was answered with."""
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    missing = dict(sent)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"{gateway.url}/admin", headers=headers) as admin:
        while missing and time.monotonic() < deadline:
            for request_id in list(missing):
                found = admin.get(f"/exchanges/{request_id}")
                if found.status_code == 200:
                    assert found.json()["http_status"] == missing.pop(request_id), request_id
                else:
                    assert found.status_code == 404, found.text
            if missing:
                time.sleep(0.2)
    some = dict(list(missing.items())[:5])
    assert not missing, f"{len(missing)} of {len(sent)} requests have no record, e.g. {some}"
    # the examples reach past the door, or the property says little about the rest
    assert any(status == 200 for _, status in sent)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_hostile_bodies_never_a_5xx_and_always_recorded(
    postgres_gateway: Gateway, http: httpx.Client
) -> None:
    gateway = postgres_gateway
    sent: list[tuple[str, int]] = []

    @SETTINGS
    @given(raw_bodies, st.sampled_from(["chat/completions", "embeddings"]))
    def send(body: bytes, endpoint: str) -> None:
        response = http.post(
            f"{gateway.v1}/{endpoint}",
            content=body,
            headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"},
        )
        check_answer(response, sent)

    send()
    check_recorded(gateway, sent)


authorizations = st.one_of(
    st.just("Bearer KEY"),
    st.builds(lambda t: f"Bearer {t}", odd_text),
    st.sampled_from(["", "Bearer", "Bearer  KEY", "bearer KEY", "Basic dXNlcjpwYXNz", "KEY"]),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)


EXTRA_HEADERS = ["x-request-id", "accept", "accept-encoding", "x-situate-decision", "openai-beta"]


def _header_value(value: str) -> bytes:
    """What HTTP lets a header value be (RFC 9110: visible ASCII, spaces, obs-text): a value
    outside it is refused by the HTTP server before any application sees the request."""
    legal = "".join(c for c in value if c == "\t" or (0x20 <= ord(c) <= 0xFF and ord(c) != 0x7F))
    return legal.strip().encode("latin-1")


def test_odd_headers_never_a_5xx_and_always_recorded(
    postgres_gateway: Gateway, http: httpx.Client
) -> None:
    gateway = postgres_gateway
    sent: list[tuple[str, int]] = []
    good = json.dumps({"model": "test-small", "messages": [{"role": "user", "content": "hi"}]})

    @SETTINGS
    @given(
        st.just(["Bearer KEY"]) | st.lists(authorizations, min_size=0, max_size=3),
        st.lists(content_types, min_size=0, max_size=2),
        st.lists(st.tuples(st.sampled_from(EXTRA_HEADERS), odd_text), max_size=2),
    )
    def send(auths: list[str], kinds: list[str], extra: list[tuple[str, str]]) -> None:
        headers = [("authorization", a.replace("KEY", gateway.key)) for a in auths]
        headers += [("content-type", kind) for kind in kinds]
        headers += extra
        encoded = [(name.encode(), _header_value(value)) for name, value in headers]
        response = http.post(
            f"{gateway.v1}/chat/completions", content=good.encode(), headers=encoded
        )
        check_answer(response, sent)

    send()
    check_recorded(gateway, sent)
