"""``regex``: a policy author's own pattern, matched on the text exactly as given."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import Field

from gateway.checks.base import CheckConfigError, Finding
from gateway.checks.params import StrictParams, parse_params

_FLAGS = MappingProxyType(
    {
        "i": re.IGNORECASE,
        "m": re.MULTILINE,
        "s": re.DOTALL,
        "x": re.VERBOSE,
        "a": re.ASCII,
    }
)


class RegexParams(StrictParams):
    pattern: str = Field(min_length=1)
    flags: str = ""
    label: str = Field(default="regex", min_length=1)
    max_span: int = Field(default=200, gt=0)
    #: report this capture group's span, not the whole match: a pattern can then require a
    #: context ("I live at ...") and find only what follows it
    group: int | str | None = None


def compile_flags(letters: str) -> re.RegexFlag:
    flags = re.RegexFlag(0)
    for letter in letters:
        flag = _FLAGS.get(letter)
        if flag is None:
            raise CheckConfigError(
                f"regex: unknown flag {letter!r}; known: {', '.join(sorted(_FLAGS))}"
            )
        flags |= flag
    return flags


class RegexCheck:
    """Every non-empty match of one pattern; the rule's label names what it stands for."""

    name: ClassVar[str] = "regex"

    def __init__(self, params: Any) -> None:
        if isinstance(params, str):
            params = {"pattern": params}
        settings = parse_params(self.name, RegexParams, params)
        try:
            self._pattern = re.compile(settings.pattern, compile_flags(settings.flags))
        except re.error as exc:
            raise CheckConfigError(f"regex: invalid pattern {settings.pattern!r}: {exc}") from exc
        self._label = settings.label
        self._max_span = settings.max_span
        self._group = _group(self._pattern, settings.group)

    @property
    def max_span(self) -> int:
        return self._max_span

    def find(self, text: str) -> list[Finding]:
        # Empty matches mark positions, not text; there is nothing to redact or report (nor is
        # a group that took no part in the match).
        spans = (match.span(self._group) for match in self._pattern.finditer(text))
        return [Finding(start, end, self._label) for start, end in spans if end > start]


def _group(pattern: re.Pattern[str], group: int | str | None) -> int | str:
    if group is None:
        return 0
    known = group in pattern.groupindex if isinstance(group, str) else 0 <= group <= pattern.groups
    if not known:
        raise CheckConfigError(f"regex: the pattern has no group {group!r}")
    return group
