"""Where a problem in a policy file is: its line, from the YAML nodes, and a readable name for
the place (``rules[no-investment-advice].action``, not ``rules.1.action``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Loc = Sequence[str | int]

#: Constructs that a parser reports where it gave up looking for their end (often the next
#: line, or the end of the file); the operator's mistake is where they opened.
_UNCLOSED = ("flow", "quoted scalar", "simple key")
_MERGE = "tag:yaml.org,2002:merge"  # "<<: *defaults" may be given more than once


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
        ordered = sorted(set(problems), key=lambda p: (p.line, p.message))
        super().__init__("\n".join(str(p) for p in ordered))
        self.problems = ordered


def parse(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    """The data of a YAML text and its root node (for lines), or a PolicyError saying where."""
    loader = yaml.SafeLoader(text)
    try:
        root: yaml.Node | None = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.MarkedYAMLError as exc:
        raise PolicyError([_yaml_problem(path, exc)]) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"not valid YAML: character {exc.character!r} is not allowed ({exc.reason})"
        raise PolicyError([Problem(path, line, message)]) from exc
    finally:
        loader.dispose()


def duplicate_keys(path: Path, root: yaml.Node | None) -> list[Problem]:
    """Each key given twice in one mapping, at any depth. YAML keeps the last silently, so a
    second ``rules:`` would replace the first; here each is an error at the second's line."""
    found: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, name = stack.pop()
        if id(node) in seen:  # an alias of a node already read
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += [(item, f"{name}[{_item_name(item, i)}]") for i, item in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            found += _mapping_duplicates(path, node, name)
            stack += [(value, _key_path(name, key)) for key, value in node.value]
    return found


def _mapping_duplicates(path: Path, node: yaml.MappingNode, name: str) -> list[Problem]:
    first: dict[tuple[str, str], int] = {}
    found = []
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        line = key.start_mark.line + 1
        if (key.tag, key.value) in first:
            where = first[(key.tag, key.value)]
            message = f"duplicate key (first at line {where}); YAML would keep only the last one"
            found.append(Problem(path, line, f"{_key_path(name, key)}: {message}"))
        else:
            first[(key.tag, key.value)] = line
    return found


def _key_path(name: str, key: yaml.Node) -> str:
    part = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
    return f"{name}.{part}" if name else part


def _item_name(item: yaml.Node, index: int) -> str:
    """A list item as ``name_of`` names it: by its ``id`` or ``name``, else its index."""
    if isinstance(item, yaml.MappingNode):
        for wanted in ("id", "name"):
            for key, value in item.value:
                if key.value == wanted and isinstance(value, yaml.ScalarNode) and value.value:
                    return str(value.value)
    return str(index)


def _yaml_problem(path: Path, exc: yaml.MarkedYAMLError) -> Problem:
    context, problem = exc.context_mark, exc.problem_mark
    unclosed = exc.context is not None and any(word in exc.context for word in _UNCLOSED)
    mark = context if unclosed and context is not None else problem or context
    parts = [_at(exc.context, context), _at(exc.problem, problem), exc.note]
    message = ", ".join(part for part in parts if part)
    return Problem(path, mark.line + 1 if mark is not None else 1, f"not valid YAML: {message}")


def _at(what: str | None, mark: yaml.Mark | None) -> str | None:
    if what is None or mark is None:
        return what
    return f"{what} (line {mark.line + 1}, column {mark.column + 1})"


def line_at(root: yaml.Node | None, loc: Iterable[Any]) -> int:
    """The line of the YAML node a location points at (1-based); the nearest node found."""
    if root is None:
        return 1
    node = root
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


def validation_problems(
    path: Path, exc: ValidationError, data: Any, root: yaml.Node | None
) -> list[Problem]:
    """Each of a validation's errors at its line, named as the operator reads the file.

    A validator may raise a ValueError carrying ``problems`` (``schema.Misplaced``): pairs of a
    location below the model it validates and a message, each reported at its own line."""
    found = []
    for err in exc.errors():
        cause = err.get("ctx", {}).get("error")
        located = getattr(cause, "problems", None)
        if located:
            pairs = [((*err["loc"], *sub), message) for sub, message in located]
        elif err["type"] == "value_error" and cause is not None:
            pairs = [(err["loc"], str(cause))]  # without pydantic's "Value error, "
        else:
            pairs = [(err["loc"], err["msg"])]
        found += [
            Problem(path, line_at(root, loc), f"{name_of(loc, data)}: {message}")
            for loc, message in pairs
        ]
    return found


def name_of(loc: Loc, data: Any) -> str:
    """A location as an operator reads it: list items by their ``id`` or ``name``, if any."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            item = data[part] if isinstance(data, list) and part < len(data) else None
            ident = (item.get("id") or item.get("name")) if isinstance(item, dict) else None
            name += f"[{ident}]" if isinstance(ident, str) and ident else f"[{part}]"
            data = item
        else:
            name += f".{part}" if name else str(part)
            data = data.get(part) if isinstance(data, dict) else None
    return name or "policy"
