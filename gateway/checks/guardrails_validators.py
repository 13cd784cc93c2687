"""The gateway's detectors as guardrails-ai validators, for guardrails users' own guards.

    import gateway.checks.guardrails_validators  # registers situate/<detector>
    from guardrails import Guard
    guard = Guard().use(SituatePII(params=["email", "iban"], on_fail="fix"))

Each validator takes the detector's own parameters as ``params`` and fails with one
``ErrorSpan`` per finding and a ``fix_value`` in which the spans are redacted. Importing this
module imports guardrails (with its telemetry off).
"""

from __future__ import annotations

from typing import Any

from gateway.checks.guardrails_bridge import load_guardrails
from gateway.checks.registry import default_registry
from gateway.checks.spans import redact

load_guardrails()

from guardrails.classes.validation.validation_result import (  # noqa: E402
    ErrorSpan,
    FailResult,
    PassResult,
)
from guardrails.validator_base import Validator, register_validator  # noqa: E402


class _SituateValidator(Validator):  # type: ignore[misc]
    detector = ""

    def __init__(self, params: Any = None, on_fail: Any = None, **kwargs: Any) -> None:
        super().__init__(on_fail=on_fail, params=params, **kwargs)
        self._check = default_registry().create(self.detector, params)

    def _validate(self, value: Any, metadata: dict[str, Any]) -> PassResult | FailResult:
        text = str(value)
        findings = self._check.find(text)
        if not findings:
            return PassResult()
        return FailResult(
            error_message="; ".join(sorted({f.label for f in findings})),
            fix_value=redact(text, [(f.start, f.end, f"[{f.label}]") for f in findings]),
            error_spans=[ErrorSpan(start=f.start, end=f.end, reason=f.label) for f in findings],
        )


def _register(detector: str, class_name: str) -> type[Validator]:
    cls = type(class_name, (_SituateValidator,), {"detector": detector})
    registered: type[Validator] = register_validator(
        name=f"situate/{detector}", data_type="string"
    )(cls)
    return registered


SituateRegex = _register("regex", "SituateRegex")
SituateKeywords = _register("keywords", "SituateKeywords")
SituatePII = _register("pii", "SituatePII")
SituateInjection = _register("injection", "SituateInjection")
SituateAnthropomorphism = _register("anthropomorphism", "SituateAnthropomorphism")
