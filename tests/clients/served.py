"""The real-client tests' context, whose policy scopes tools, and what the mock upstream's script
adds for them: a model calling a tool it was never offered (served by the session's scoped
gateway, tests/scoped.py)."""

from __future__ import annotations

from typing import Any

CONTEXT = "agent-tools"
#: what the mock answers when a user text holds it: a call of a tool it was not offered
ROGUE = "CLIENTS-ROGUE-CALL"
SCRIPT = {"rules": [{"contains": ROGUE, "tool_calls": [{"name": "delete_account"}]}]}
POLICY: dict[str, Any] = {
    "context": CONTEXT,
    "purpose": "An assistant that looks up the weather and may move small sums to friends.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small", "native-small"]},
    "tools": {
        "allow": [
            "get_weather",
            {
                "name": "transfer",
                "arguments": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "number", "maximum": 100},
                        "recipient": {"enum": ["alice", "bob"]},
                    },
                    "required": ["amount", "recipient"],
                },
            },
            "extract_*",  # the function-calling form of structured output
            "Person",  # langchain names its structured-output tool after the model
        ],
        "on_declared": "remove",
        "on_call": "block",
        "refusal": "I can't use that tool here.",
    },
}
