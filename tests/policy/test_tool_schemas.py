"""A tool's argument schema in a policy: checked as a JSON Schema, and cheaply.

jsonschema imports rfc3987-syntax where guardrails-ai installed it, and that module compiles
some forty grammars at import (2.6 s here): every ``gateway`` command that reads a policy with a
tool schema paid for it. The gateway never checks the ``iri`` formats it serves, so it imports
jsonschema without them (``gateway.policy.schema.load_jsonschema``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

_PROBE = """
import importlib.util, json, sys
from gateway.policy.schema import ToolRule, schema_problem
from pydantic import ValidationError

said = {"valid": schema_problem({"type": "object", "properties": {"to": {"type": "string"}}})}
said["invalid"] = schema_problem({"type": "object", "properties": {"to": {"type": "strng"}}})
try:
    ToolRule.model_validate({"name": "transfer", "arguments": {"type": 7}})
except ValidationError as exc:
    said["rule"] = str(exc)
said["grammars_compiled"] = "rfc3987_syntax" in sys.modules
# still importable by whoever asks for it (find_spec refuses a name hidden as None)
said["importable"] = importlib.util.find_spec("rfc3987_syntax") is not None
print(json.dumps(said))
"""


def test_a_tool_schema_is_checked_without_compiling_the_iri_grammars() -> None:
    # a fresh interpreter: this one may have imported jsonschema already
    ran = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    said = json.loads(ran.stdout)
    assert said["valid"] is None
    assert said["invalid"] is not None and "strng" in said["invalid"]
    assert "not a valid JSON Schema" in said["rule"]
    assert said["grammars_compiled"] is False
    # installed here only with the guardrails extra
    assert said["importable"] is (importlib.util.find_spec("rfc3987_syntax") is not None)
