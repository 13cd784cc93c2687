"""Read, validate and compile a policy file, reporting every problem with its file and line."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.checks.base import CheckConfigError, Registry
from gateway.policy.compiled import CompiledPolicy, CompiledRule, Guideline
from gateway.policy.schema import Policy
from gateway.policy.scope import build_scope


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class PolicyError(Exception):
    """A policy file that cannot serve; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def revision_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _line(node: yaml.Node | None, loc: Iterable[Any]) -> int:
    """The line of the YAML node a validation error's location points at (1-based)."""
    if node is None:
        return 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                found: yaml.Node = value
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


def _parse(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    try:
        root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        return yaml.safe_load(text), root
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise PolicyError([Problem(path, line, f"not valid YAML: {exc}")]) from exc


def _validate(path: Path, data: Any, root: yaml.Node | None) -> Policy:
    if not isinstance(data, dict):
        raise PolicyError([Problem(path, 1, "a policy file must be a mapping")])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                path,
                _line(root, err["loc"]),
                f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}",
            )
            for err in exc.errors()
        ]
        raise PolicyError(problems) from exc


def _compile_rules(
    path: Path, policy: Policy, root: yaml.Node | None, registry: Registry
) -> tuple[list[CompiledRule], list[Problem]]:
    rules, problems = [], []
    for index, rule in enumerate(policy.rules):
        try:
            check = registry.create(rule.detector, rule.detect[rule.detector])
        except CheckConfigError as exc:
            line = _line(root, ("rules", index, "detect", rule.detector))
            problems.append(Problem(path, line, f"rule {rule.id!r}: {exc}"))
            continue
        rules.append(CompiledRule(rule, check))
    return rules, problems


def _guidelines(
    path: Path,
    policy: Policy,
    root: yaml.Node | None,
) -> tuple[dict[str, Guideline], list[Problem]]:
    found, problems = {}, []
    for name, queue in policy.review.queues.items():
        file = (path.parent / queue.guidelines).resolve()
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            line = _line(root, ("review", "queues", name, "guidelines"))
            problems.append(
                Problem(
                    path,
                    line,
                    f"queue {name!r}: guideline file "
                    f"{queue.guidelines!r} unreadable: {exc.strerror}",
                )
            )
            continue
        found[name] = Guideline(name, file, revision_of(text), text)
    return found, problems


def _aliases(
    path: Path, policy: Policy, root: yaml.Node | None, known: Iterable[str] | None
) -> list[Problem]:
    if known is None:
        return []
    known = set(known)
    return [
        Problem(
            path,
            _line(root, ("models", "allow", i)),
            f"model {alias!r} is not an alias in the gateway config",
        )
        for i, alias in enumerate(policy.models.allow)
        if alias not in known
    ]


def load_policy(
    path: Path,
    registry: Registry,
    aliases: Iterable[str] | None = None,
) -> CompiledPolicy:
    """Compile one policy file, or raise PolicyError with every problem in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([Problem(path, 1, f"unreadable: {exc.strerror}")]) from exc
    data, root = _parse(path, text)
    policy = _validate(path, data, root)
    rules, problems = _compile_rules(path, policy, root, registry)
    guidelines, more = _guidelines(path, policy, root)
    problems += more + _aliases(path, policy, root, aliases)
    if path.stem != policy.context:
        problems.append(
            Problem(
                path, _line(root, ("context",)), f"the file must be named {policy.context}.yaml"
            )
        )
    if problems:
        raise PolicyError(problems)
    return CompiledPolicy(
        policy=policy,
        revision=revision_of(text),
        text=text,
        path=path,
        rules=tuple(rules),
        scope=build_scope(policy.scope),
        guidelines=guidelines,
    )


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a folder: ``*.yaml``, except test files (``*.tests.yaml``)."""
    return sorted(p for p in directory.glob("*.yaml") if not p.name.endswith(".tests.yaml"))
