"""A guardrails validator of the tests' own, to run through the gateway's bridge."""

from __future__ import annotations

from typing import Any

from gateway.checks.guardrails_bridge import load_guardrails

load_guardrails()

from guardrails.classes.validation.validation_result import (  # noqa: E402
    ErrorSpan,
    FailResult,
    PassResult,
)
from guardrails.validator_base import Validator, register_validator  # noqa: E402


@register_validator(name="tests/no-bananas", data_type="string")
class NoBananas(Validator):
    def __init__(self, word: str = "banana", on_fail: Any = None, **kwargs: Any) -> None:
        super().__init__(on_fail=on_fail, word=word, **kwargs)
        self.word = word

    def _validate(self, value: Any, metadata: dict[str, Any]) -> PassResult | FailResult:
        start = str(value).find(self.word)
        if start < 0:
            return PassResult()
        end = start + len(self.word)
        return FailResult(
            error_message=f"mentions {self.word}",
            error_spans=[ErrorSpan(start=start, end=end, reason=self.word)],
        )


@register_validator(name="tests/exploding", data_type="string")
class Exploding(Validator):
    def _validate(self, value: Any, metadata: dict[str, Any]) -> PassResult | FailResult:
        raise RuntimeError("this validator always fails")
