"""The tool page's context: a bank's agent whose tool calls a person checks (served by the
session's scoped gateway, tests/scoped.py)."""

from __future__ import annotations

CONTEXT, QUEUE = "tool-desk", "calls"
POLICY = f"""\
context: {CONTEXT}
purpose: A bank's agent whose tool calls a person checks.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small]
tools:
  allow:
    - "lookup_*"
    - name: transfer
      arguments:
        type: object
        properties: {{amount: {{type: number, maximum: 100}}}}
        required: [amount]
  on_call: flag
  review: {QUEUE}
review:
  sample_rate: 0
  queues:
    {QUEUE}: {{guidelines: guidelines/calls.md}}
"""
GUIDELINES = {"calls.md": "# Calls\nWas the call right?\n"}
