"""The mock's JSON Schema instances: fixed cases and pydantic's schemas, checked by jsonschema."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from gateway.mock.schema_instance import instance

CASES: list[tuple[dict[str, Any], Any]] = [
    ({"type": "string", "enum": ["b", "a"]}, "b"),
    ({"const": 7}, 7),
    ({"type": "string", "format": "email"}, "user@example.com"),
    ({"type": "string", "format": "date"}, "2026-01-01"),
    ({"type": "string", "format": "uri"}, "https://example.com/"),
    ({"type": "string", "minLength": 12}, "some wordsxx"),
    ({"type": "string", "maxLength": 3}, "som"),
    ({"type": "string", "pattern": "^ABC$"}, "ABC"),
    ({"type": "string", "pattern": "^[0-9]{3}-x$"}, "000-x"),
    ({"type": "string", "pattern": "^(a|b)+$"}, "some words"),  # not simple: the text
    ({"type": "integer", "minimum": 5, "maximum": 9}, 5),
    ({"type": "integer", "exclusiveMinimum": 5}, 6),
    ({"type": "integer", "maximum": -3}, -3),
    ({"type": "integer", "minimum": 7, "multipleOf": 5}, 10),
    ({"type": "number", "exclusiveMaximum": 0}, -1.0),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, 0.5),
    ({"type": "number", "minimum": 0.25, "multipleOf": 0.5}, 0.5),
    ({"type": "boolean"}, True),
    ({"type": "null"}, None),
    ({"type": ["null", "integer"]}, 0),
    ({"anyOf": [{"type": "integer", "minimum": 2}, {"type": "string"}]}, 2),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 3}, [0, 0, 0]),
    ({"type": "array", "items": {"type": "string"}, "maxItems": 0}, []),
    (
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
        {"a": 0},
    ),
]


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_fixed_cases_are_valid_and_as_expected(schema: dict[str, Any], expected: Any) -> None:
    value = instance(schema, "some words")
    if "(" not in schema.get("pattern", ""):
        jsonschema.validate(value, schema)
    if expected is not None or schema.get("type") == "null":
        assert value == expected


def test_strict_gives_every_property_and_the_same_schema_gives_the_same_value() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["a"],
    }
    assert instance(schema, "hi", strict=True) == {"a": 0, "b": "hi"}
    assert instance(schema, "hi", strict=True) == instance(schema, "hi", strict=True)


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str = Field(min_length=3)
    zip_code: str = Field(pattern=r"^\d{5}$")
    country: Literal["FR", "DE"]


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, lt=130)
    height: float = Field(gt=0, multiple_of=0.5)
    email: str | None = None
    born: date
    favourite: Color
    home: Address
    past: list[Address] = Field(min_length=2)
    tags: list[str] = []


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


@pytest.mark.parametrize("model", [Address, Person, Tree])
def test_pydantic_schemas_with_defs_and_refs(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    for strict in (False, True):
        value = instance(schema, "Ada Lovelace", strict=strict)
        jsonschema.validate(value, schema)
        model.model_validate(value)
