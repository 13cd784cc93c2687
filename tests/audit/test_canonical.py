"""``canonical`` is RFC 8785: the same bytes as the ``rfc8785`` package for every JSON value
(its fast path included), and ``json_value`` puts a value in the domain JCS writes, as a
database gives it back."""

from __future__ import annotations

import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.canonical import SAFE_INT, canonical, json_value, stored_canonical

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-SAFE_INT, max_value=SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_keys = st.text() | st.sampled_from(["a", "b", "é", "\uffff", "\U0001f600", "A", ""])
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


def _same(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical(value)
        return
    assert canonical(value) == expected


@settings(max_examples=150, deadline=None)
@given(_json)
def test_canonical_is_rfc8785_for_any_json_value(value: Any) -> None:
    _same(value)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_is_written_as_ecmascript_does(value: float) -> None:
    _same(value)
    _same({"x": [value, -value]})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, b"1"),
        (1e16, b"10000000000000000"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (-0.0, b"0"),
        (0.1, b"0.1"),
        (2**53 - 1, b"9007199254740991"),
        ({"b": 1, "a": {"d": None, "c": True}}, b'{"a":{"c":true,"d":null},"b":1}'),
        # UTF-16 order: U+1F600 is the surrogate pair D83D DE00, which sorts before U+FFFF
        ({"\uffff": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\uffff":1}'.encode()),
        ("\x1f\x7f\u2028\"\\", b'"\\u001f\x7f\xe2\x80\xa8\\"\\\\"'),
    ],
)
def test_known_values(value: Any, text: bytes) -> None:
    assert canonical(value) == text
    assert rfc8785.dumps(value) == text


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, 2**53, {"x": -(2**60)}, "\ud800", {1: "a key not text"}]
)
def test_what_jcs_cannot_write_is_refused(value: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical(value)


def test_json_value_is_what_a_database_gives_back() -> None:
    stored = json_value(
        {"nan": math.nan, "inf": -math.inf, "text": "a\x00b\ud800", "big": 10**20, "t": (1, 2)}
    )
    assert stored == {
        "nan": "NaN",
        "inf": "-Infinity",
        "text": "a\ufffdb\ufffd",
        "big": 1e20,
        "t": [1, 2],
    }
    assert json_value({"huge": -(10**400), "flag": True}) == {"huge": "-Infinity", "flag": True}
    # jsonb gives the float 1e20 back as an integer: both commit the same
    assert canonical(json_value({"x": 1e20})) == canonical(json_value({"x": 10**20}))
    assert canonical(json_value([1.5e300])) == canonical(json_value([int(1.5e300)]))


@settings(max_examples=200, deadline=None)
@given(_json | st.floats() | st.integers())
def test_json_value_is_always_canonical(value: Any) -> None:
    canonical(json_value(value))


_stored = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()))
    | st.sampled_from(["nul \x00", "\ud800 lone", 1.0, -0.0, 2.0**60]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text() | st.just("k\x00"), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_stored)
def test_stored_canonical_is_canonical_of_the_stored_value(value: Any) -> None:
    assert stored_canonical(value) == canonical(json_value(value))
