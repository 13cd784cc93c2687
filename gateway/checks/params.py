"""A rule's raw YAML parameters as validated settings, with errors a policy author can read."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.checks.base import CheckConfigError

ParamsT = TypeVar("ParamsT", bound="StrictParams")


class StrictParams(BaseModel):
    """Parameters forbid unknown keys: a misspelt option should fail the policy, not be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_params(detector: str, model: type[ParamsT], raw: Any) -> ParamsT:
    """Validate ``raw`` against ``model``, turning pydantic's error into a ``CheckConfigError``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CheckConfigError(
            f"{detector}: parameters must be a mapping, not {type(raw).__name__}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}"
            for error in exc.errors()
        )
        raise CheckConfigError(f"{detector}: {problems}") from exc
