"""What a Responses request may carry, on each path.

The fields the gateway reads are validated strictly (as chat's, ``pipeline/request.py``). On
the translate path (a backend that speaks chat completions) every field is one the gateway
turns into chat's or handles itself; any other field, CreateResponse's or not, is a 400
``unsupported_parameter`` naming it, never silently dropped. On the native path (a backend
that serves the Responses API itself) everything else passes through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from gateway.errors import InvalidRequest
from gateway.pipeline.request import _FINITE, _Open, validate

#: the fields the translate path carries over (or handles itself)
TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "user",
        "metadata",
        "store",
        "stream",
        "previous_response_id",
        "truncation",
    }
)
#: the input items the translate path turns into chat messages
ITEMS = frozenset({"message", "function_call", "function_call_output"})
_PARTS = frozenset({"input_text", "output_text", "input_image"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})


class ResponsesRequest(_Open):
    model: StrictStr | None = Field(None, min_length=1, description="else the context's default")
    input: StrictStr | list[dict[str, Any]] | None = None
    instructions: StrictStr | None = None
    tools: list[dict[str, Any]] | None = None
    stream: StrictBool | None = None
    store: StrictBool | None = None
    previous_response_id: StrictStr | None = Field(None, min_length=1)
    max_output_tokens: StrictInt | None = Field(None, ge=1)
    temperature: _FINITE | None = Field(None, ge=0, le=2)
    top_p: _FINITE | None = Field(None, ge=0, le=1)
    parallel_tool_calls: StrictBool | None = None
    metadata: dict[str, StrictStr] | None = None
    user: StrictStr | None = None
    truncation: Literal["auto", "disabled"] | None = None

    @property
    def stored(self) -> bool:
        return self.store is not False


#: the output items that are calls the tool scope judges, with the field that is their id
#: in the chat view (``records.shapes``): a blocked one is taken out of the Response
CALLS = {"function_call": "call_id", "custom_tool_call": "call_id", "mcp_call": "id"}
#: input items whose text the chat view does not give the input rules to read: a reference
#: to an item stored elsewhere, and results the view has no message for
UNREAD_ITEMS = frozenset(
    {"item_reference", "file_search_call", "code_interpreter_call", "mcp_list_tools", "compaction"}
)
#: input items the view reads, or the model's own items with no input in them
READ_ITEMS = ITEMS | {
    "custom_tool_call", "mcp_call", "mcp_approval_request", "mcp_approval_response", "reasoning",
    "computer_call", "local_shell_call", "shell_call", "apply_patch_call", "web_search_call",
    "image_generation_call",
}


def checked(body: dict[str, Any]) -> ResponsesRequest:
    """The fields every path reads, validated; a 400 (every path, the native one too) for
    input the rules cannot read (``readable``)."""
    request = validate(ResponsesRequest, body)
    if request.input is None and request.previous_response_id is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    readable(body)
    return request


def readable(body: dict[str, Any]) -> None:
    """A 400 naming the first field or item whose content the input rules cannot read: a
    ``conversation`` (its items live in the backend's store), a ``prompt`` variable that is
    not text, an item that refers elsewhere or that the chat view does not read."""
    if body.get("conversation") is not None:
        raise unsupported("conversation", "its items are the backend's, which no rule reads; "
                          "send them as input, or use previous_response_id")
    prompt = body.get("prompt")
    variables = prompt.get("variables") if isinstance(prompt, dict) else None
    for name, value in variables.items() if isinstance(variables, dict) else ():
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise unsupported(f"prompt.variables.{name}", "only text variables are read")
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        kind = item.get("type", "message" if "role" in item else None)
        if kind in UNREAD_ITEMS or (kind not in READ_ITEMS and not str(kind).endswith("_output")):
            raise unsupported(f"input[{index}]", f"the item type {kind!r} is not one the "
                              "input rules can read")


def translatable(body: dict[str, Any]) -> None:
    """The translate path's 400 for the first field, tool, item or part it cannot carry."""
    for name in body:
        if name not in TRANSLATED and not (name == "include" and body[name] == []):
            raise unsupported(name, "it is not translated to chat completions")
    if body.get("truncation") not in (None, "disabled"):
        raise unsupported("truncation", "only 'disabled' is translated")
    for index, tool in enumerate(body.get("tools") or ()):
        if tool.get("type") != "function":
            raise unsupported(f"tools[{index}]", f"the built-in tool '{tool.get('type')}' needs "
                              "a backend that serves the Responses API")
    _formats(body.get("text"))
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        _item(index, item)


def _formats(text: Any) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise InvalidRequest("Invalid value for 'text': an object.", param="text",
                             code="invalid_type")
    for name in text:
        if name != "format":
            raise unsupported(f"text.{name}", "it is not translated to chat completions")
    kind = text.get("format", {}).get("type") if isinstance(text.get("format"), dict) else None
    if "format" in text and kind not in _FORMATS:
        raise unsupported("text.format", f"the format {kind!r} is not translated")


def _item(index: int, item: dict[str, Any]) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    where = f"input[{index}]"
    if kind not in ITEMS:
        raise unsupported(where, f"the item type {kind!r} is not translated to chat completions")
    if kind == "message":
        content = item.get("content")
        for number, part in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(part, dict) or part.get("type") not in _PARTS:
                name = part.get("type") if isinstance(part, dict) else part
                raise unsupported(f"{where}.content[{number}]",
                                  f"the content part {name!r} is not translated")
    if kind == "function_call_output" and not isinstance(item.get("output"), str):
        raise unsupported(f"{where}.output", "only a string output is translated")


def unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"Unsupported parameter: '{param}' on this model's backend: {why}.",
        param=param,
        code="unsupported_parameter",
    )
