"""Validate bodies against the official OpenAI OpenAPI spec (read from the shared data folder)."""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml

from tests.shared_data import shared_file

SPEC = "openai-openapi/openapi.yaml"


@functools.cache
def _components() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with shared_file(SPEC).open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)
    return {"components": spec["components"]}


def _openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` (which this 3.1 file still uses) as JSON Schema's null type."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _openapi_to_json_schema(v) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") is True else converted


# Known gaps in the published spec, where the live API (and the SDK's own types) send null:
# a stream chunk's finish_reason is null until the last chunk of each choice.
_SPEC_ERRATA = {
    ("CreateChatCompletionStreamResponse", "finish_reason"),
}


# A Response's usage is null until it is complete: the live API sends null in
# response.created and response.in_progress, and the SDK types it Optional.
_RESPONSE_ERRATA = ("usage",)


def _apply_errata(components: dict[str, Any]) -> None:
    for schema_name, field in _SPEC_ERRATA:
        choice = components["schemas"][schema_name]["properties"]["choices"]["items"]
        choice["properties"][field] = {"anyOf": [choice["properties"][field], {"type": "null"}]}
    response = components["schemas"]["Response"]["allOf"][2]["properties"]
    for field in _RESPONSE_ERRATA:
        response[field] = {"anyOf": [response[field], {"type": "null"}]}


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    components = _openapi_to_json_schema(_components()["components"])
    _apply_errata(components)
    schema = {"components": components, "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema)


def check(name: str, body: Any) -> None:
    """Fail with every violation of the named component schema."""
    errors = sorted(_validator(name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{name} violations: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:5]
    )


@functools.cache
def _stream_event_schemas() -> dict[str, str]:
    """A Responses stream event's type → the name of its schema (``ResponseStreamEvent``'s)."""
    schemas = _components()["components"]["schemas"]
    names = {}
    for ref in schemas["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        for kind in schemas[name]["properties"]["type"].get("enum") or ():
            names[kind] = name
    return names


def check_stream_event(event: dict[str, Any]) -> None:
    """Fail unless ``event`` is one of the spec's Responses stream events, valid as its type's."""
    names = _stream_event_schemas()
    assert event.get("type") in names, f"not a Responses stream event: {event.get('type')}"
    check(names[event["type"]], event)
