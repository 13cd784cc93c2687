"""Run any guardrails-ai validator as a detector: ``detect: {guardrails: {validator: …}}``.

guardrails is imported only when a policy uses it (the import costs seconds and pulls in
litellm), and its telemetry and remote inference are forced off first: the gateway carries
private prompts, and nothing about them may leave the host. The validator is called directly
(``validator.validate``), not through a ``Guard``, so no guard history or tracing runs either.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.checks.base import CheckConfigError, Finding


class GuardrailsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    validator: str = Field(min_length=1, description="a registered name or a dotted path")
    args: dict[str, Any] = {}
    max_span: int = Field(200, ge=1)


def load_guardrails() -> Any:
    """Import guardrails with telemetry and remote inference off. Idempotent."""
    try:
        with warnings.catch_warnings():
            # Its dependencies' own deprecation notices (click, litellm) are not ours to act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            import guardrails
    except ImportError as exc:
        raise CheckConfigError(
            "the guardrails detector needs the guardrails extra: pip install 'situate[guardrails]'"
        ) from exc
    _force_rc_off(guardrails)
    guardrails.settings.disable_tracing = True
    return guardrails


def _force_rc_off(guardrails: Any) -> None:
    """Metrics and remote inference off now, and whenever guardrails re-reads its rc file.

    Every ``Guard()`` re-reads ``~/.guardrailsrc``, whose absence means metrics *on* (spans
    exported to guardrails' own collector); so the reader itself is wrapped, once.
    """
    from guardrails.classes.rc import RC

    if not getattr(RC, "_situate_local_only", False):
        original = RC.load.__func__

        def load(cls: Any, *args: Any, **kwargs: Any) -> Any:
            rc = original(cls, *args, **kwargs)
            rc.enable_metrics = False
            rc.use_remote_inferencing = False
            return rc

        RC.load = classmethod(load)
        RC._situate_local_only = True
    rc = guardrails.settings.rc
    rc.enable_metrics = False
    rc.use_remote_inferencing = False


def _validator_class(name: str) -> Any:
    from guardrails.validator_base import get_validator_class

    if ":" in name or ("." in name and "/" not in name):
        module_name, _, attribute = name.replace(":", ".").rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise CheckConfigError(f"cannot import validator {name!r}: {exc}") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # guardrails warns instead of raising: we raise
        found = get_validator_class(name)
    if found is None:
        raise CheckConfigError(f"no guardrails validator named {name!r} is installed")
    return found


class GuardrailsCheck:
    name: ClassVar[str] = "guardrails"

    def __init__(self, params: GuardrailsParams) -> None:
        load_guardrails()
        from guardrails.validator_base import Validator

        cls = _validator_class(params.validator)
        if not (isinstance(cls, type) and issubclass(cls, Validator)):
            raise CheckConfigError(f"{params.validator!r} is not a guardrails Validator")
        try:
            self._validator = cls(**params.args, on_fail="noop", use_local=True)
        except TypeError as exc:
            raise CheckConfigError(f"validator {params.validator!r}: {exc}") from exc
        self._label = f"guardrails:{getattr(cls, 'rail_alias', '') or cls.__name__}"
        self._max_span = params.max_span

    @classmethod
    def from_params(cls, params: Any) -> GuardrailsCheck:
        if isinstance(params, str):
            params = {"validator": params}
        try:
            return cls(GuardrailsParams.model_validate(params))
        except ValidationError as exc:
            raise CheckConfigError(f"guardrails: {exc.errors()[0]['msg']}") from exc

    @property
    def max_span(self) -> int:
        return self._max_span

    def find(self, text: str) -> list[Finding]:
        from guardrails.classes.validation.validation_result import FailResult

        result = self._validator.validate(text, {})
        if not isinstance(result, FailResult):
            return []
        spans = result.error_spans or []
        if not spans:
            return [Finding(0, len(text), self._label)]
        return [Finding(s.start, s.end, f"{self._label}:{s.reason}"[:120]) for s in spans]
