"""Read, validate and compile a policy file, reporting every problem with its file and line.

A file that fails validation is still compiled as far as it goes (each rule that validates on
its own, each queue's guideline file, each model alias), so one ``policy check`` lists every
problem rather than the first kind found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.checks.base import Check, CheckConfigError, Registry
from gateway.policy.compiled import CompiledPolicy, CompiledRule, Guideline
from gateway.policy.locate import (
    Loc,
    PolicyError,
    Problem,
    duplicate_keys,
    line_at,
    name_of,
    parse,
    validation_problems,
)
from gateway.policy.schema import Models, Policy, Queue, Rule, cross_references
from gateway.policy.scope import build_scope

__all__ = [
    "PolicyError",
    "Problem",
    "compile_policy",
    "load_policy",
    "policy_files",
    "revision_of",
]


def revision_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class _File:
    """One file being compiled: its data and nodes, and the problems found so far."""

    path: Path
    data: dict[str, Any]
    root: yaml.Node | None
    problems: list[Problem] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        line = line_at(self.root, loc)
        self.problems.append(Problem(self.path, line, f"{name_of(loc, self.data)}: {message}"))


@dataclass
class _Parts:
    """What of a file is valid on its own: all of it, or what could be salvaged."""

    rules: list[tuple[int, Rule]]
    detectors: list[tuple[int, str, Any]]
    queues: dict[str, Queue]
    allow: list[str] | None
    context: str | None


def _validate(file: _File) -> Policy | None:
    try:
        return Policy.model_validate(file.data)
    except ValidationError as exc:
        file.problems += validation_problems(file.path, exc, file.data, file.root)
        return None


def _whole(policy: Policy) -> _Parts:
    return _Parts(
        rules=list(enumerate(policy.rules)),
        detectors=[(i, r.detector, r.detect[r.detector]) for i, r in enumerate(policy.rules)],
        queues=dict(policy.review.queues),
        allow=list(policy.models.allow),
        context=policy.context,
    )


def _valid(model: Any, raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None  # reported by the whole file's validation


def _salvage(data: dict[str, Any]) -> _Parts:
    raw_rules = data.get("rules")
    raw_rules = raw_rules if isinstance(raw_rules, list) else []
    rules = [
        (i, rule) for i, raw in enumerate(raw_rules) if (rule := _valid(Rule, raw)) is not None
    ]
    detectors = []
    for i, raw in enumerate(raw_rules):
        detect = raw.get("detect") if isinstance(raw, dict) else None
        if isinstance(detect, dict) and len(detect) == 1 and isinstance(next(iter(detect)), str):
            detectors.append((i, *next(iter(detect.items()))))
    review = data.get("review")
    raw_queues = review.get("queues") if isinstance(review, dict) else None
    queues = {
        name: queue
        for name, raw in (raw_queues.items() if isinstance(raw_queues, dict) else ())
        if (queue := _valid(Queue, raw)) is not None
    }
    models = _valid(Models, data.get("models"))
    context = data.get("context")
    return _Parts(
        rules,
        detectors,
        queues,
        models.allow if models else None,
        context if isinstance(context, str) else None,
    )


def _checks(file: _File, parts: _Parts, registry: Registry) -> dict[int, Check]:
    checks = {}
    for index, detector, params in parts.detectors:
        try:
            checks[index] = registry.create(detector, params)
        except CheckConfigError as exc:
            file.add(("rules", index, "detect"), str(exc))  # exc names the detector
    return checks


def _guidelines(file: _File, parts: _Parts) -> dict[str, Guideline]:
    found = {}
    for name, queue in parts.queues.items():
        path = (file.path.parent / queue.guidelines).resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            file.add(
                ("review", "queues", name, "guidelines"),
                f"guideline file {queue.guidelines!r} unreadable: {exc.strerror}",
            )
            continue
        found[name] = Guideline(name, path, revision_of(text), text)
    return found


def _references(file: _File, parts: _Parts, aliases: Iterable[str] | None) -> None:
    if aliases is not None:
        known = set(aliases)
        for i, alias in enumerate(parts.allow or ()):
            if alias not in known:
                file.add(
                    ("models", "allow", i), f"model {alias!r} is not an alias in the gateway config"
                )
    if parts.context is not None and file.path.stem != parts.context:
        file.add(("context",), f"the file must be named {parts.context}.yaml")


def _file(path: Path, text: str) -> _File:
    data, root = parse(path, text)
    if not isinstance(data, dict):
        raise PolicyError([Problem(path, 1, "a policy file must be a mapping")])
    return _File(path, data, root, duplicate_keys(path, root))


def load_policy(
    path: Path,
    registry: Registry,
    aliases: Iterable[str] | None = None,
) -> CompiledPolicy:
    """Compile one policy file, or raise PolicyError with every problem in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise PolicyError([Problem(path, 1, f"unreadable: {reason}")]) from exc
    return compile_policy(path, text, registry, aliases)


def compile_policy(
    path: Path,
    text: str,
    registry: Registry,
    aliases: Iterable[str] | None = None,
) -> CompiledPolicy:
    """Compile a policy's text as the file ``path`` (guidelines are relative to it)."""
    file = _file(path, text)
    policy = _validate(file)
    parts = _whole(policy) if policy is not None else _salvage(file.data)
    if policy is None:
        for loc, message in cross_references(parts.rules, parts.allow, parts.queues):
            file.add(loc, message)
    checks = _checks(file, parts, registry)
    guidelines = _guidelines(file, parts)
    _references(file, parts, aliases)
    if file.problems or policy is None:
        raise PolicyError(file.problems)
    return CompiledPolicy(
        policy=policy,
        revision=revision_of(text),
        text=text,
        path=path,
        rules=tuple(CompiledRule(rule, checks[i]) for i, rule in parts.rules),
        scope=build_scope(policy.scope),
        guidelines=guidelines,
    )


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a folder: ``*.yaml``, except test files (``*.tests.yaml``)."""
    return sorted(p for p in directory.glob("*.yaml") if not p.name.endswith(".tests.yaml"))
