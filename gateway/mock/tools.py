"""The mock's deterministic tool rule: which tool a request offering tools is answered with.

When tools are offered (chat `tools`, legacy `functions`, or Responses `tools` of type
`function`) and not refused (`tool_choice: "none"`), and the conversation does not end with a
tool's result, the answer is one call: the forced tool (`tool_choice` naming one), else the
tool whose name appears in the last user text (first in `tools` order), else the first tool.
Its arguments are the JSON object written right after the tool's name in the user text
(`call transfer {"amount": 250}`), else a minimal valid instance of its `parameters`. A
conversation ending with a tool result is answered with text: `The tool said: <result>`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.mock.schema_instance import instance

TOOL_SAID = "The tool said: {said}"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One offered function tool."""

    name: str
    parameters: Any
    strict: bool


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the mock answers with; ``arguments`` is a JSON text."""

    id: str
    name: str
    arguments: str


def chat_tools(body: dict[str, Any]) -> tuple[list[ToolSpec], bool]:
    """The function tools a chat request offers, and whether they are legacy `functions`."""
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        specs = [
            _spec(tool.get("function"))
            for tool in tools
            if isinstance(tool, dict) and tool.get("type", "function") == "function"
        ]
        return [s for s in specs if s is not None], False
    functions = body.get("functions")
    if isinstance(functions, list):
        specs = [_spec(f) for f in functions]
        return [s for s in specs if s is not None], True
    return [], False


def responses_tools(body: dict[str, Any]) -> list[ToolSpec]:
    """The function tools of a Responses request (flat: `{"type": "function", "name"...}`)."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    specs = [_spec(t) for t in tools if isinstance(t, dict) and t.get("type") == "function"]
    return [s for s in specs if s is not None]


def _spec(function: Any) -> ToolSpec | None:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return None
    return ToolSpec(function["name"], function.get("parameters"), function.get("strict") is True)


def forced_name(choice: Any) -> str | bool | None:
    """What a `tool_choice` (or legacy `function_call`) asks for: False for none, a name for
    one tool (`{"type": "function", "function": {"name"}}`, Responses' `{"type":
    "function", "name"}` or legacy `{"name"}`), None for the mock's own pick."""
    if choice == "none":
        return False
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        return name if isinstance(name, str) else None
    return None


def pick_call(
    tools: list[ToolSpec], choice: Any, user_text: str, conversation: Any
) -> ToolCall | None:
    """The one call the tool rule answers with, or None (no tools, or `tool_choice: none`);
    its id depends on the whole ``conversation`` (hashed only when there is a call)."""
    forced = forced_name(choice)
    if not tools or forced is False:
        return None
    tool = next((t for t in tools if t.name == forced), None) if forced else None
    if tool is None:
        tool = next((t for t in tools if t.name in user_text), tools[0])
    return make_call(tool.name, _arguments(tool, user_text), salt_of(conversation), 0)


def make_call(name: str, arguments: Any, salt: str, index: int) -> ToolCall:
    """A call with a deterministic id (the same conversation gets the same id)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    digest = hashlib.sha256(f"{salt}\0{index}\0{name}\0{text}".encode()).hexdigest()
    return ToolCall("call_" + digest[:24], name, text)


def _arguments(tool: ToolSpec, user_text: str) -> Any:
    written = _written_arguments(tool.name, user_text)
    if written is not None:
        return written
    parameters = tool.parameters if isinstance(tool.parameters, dict) else {"type": "object"}
    return instance(parameters, user_text, strict=tool.strict)


def _written_arguments(name: str, text: str) -> dict[str, Any] | None:
    """The JSON object right after the tool's name in the user text, if there is one."""
    at = text.find(name)
    while at >= 0:
        rest = text[at + len(name) :].lstrip()
        if rest.startswith("{"):
            try:
                value, _ = _DECODER.raw_decode(rest)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
        at = text.find(name, at + 1)
    return None


def salt_of(conversation: Any) -> str:
    """What makes a call id differ between turns of one conversation: its whole input."""
    return hashlib.sha256(json.dumps(conversation, sort_keys=True).encode()).hexdigest()


def tool_said(result: str) -> str:
    return TOOL_SAID.replace("{said}", result[:200])


ARGUMENT_PIECE = 8  # characters of a tool call's arguments a stream sends per chunk


def argument_pieces(arguments: str) -> list[str]:
    """A call's arguments as a stream sends them: several pieces, joined back whole."""
    return [arguments[i : i + ARGUMENT_PIECE] for i in range(0, len(arguments), ARGUMENT_PIECE)]
