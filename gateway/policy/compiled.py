"""A policy compiled once per revision: its detectors built, its scope classifier ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.checks.base import Check, Finding
from gateway.detectors.cache import DigestCache, digest, findings_size
from gateway.detectors.model import charge_scan
from gateway.policy.actions import Action, Mode, OnError, Stage
from gateway.policy.schema import Policy, Rule
from gateway.policy.tools import ToolScope


class ScopeClassifier(Protocol):
    def classify(self, text: str) -> tuple[str | None, float]:
        """The best-matching topic (None if there is none) and its score in [0, 1]."""
        ...


#: what one rule's memo of findings may hold, as ``DigestCache`` counts it
FINDINGS_BYTES = 2 * 1024 * 1024

#: on a stream, a heavy (model) output rule is scanned again once the answer has grown by this
#: many characters since its last scan (or by ``STREAM_SENTENCE_STEP`` ending a sentence), and
#: once more at the end: not on every chunk
STREAM_STEP = 200
STREAM_SENTENCE_STEP = 100


def is_heavy(component: object) -> bool:
    """Whether a check or scope classifier runs a model (its class says ``heavy = True``)."""
    return bool(getattr(component, "heavy", False))


def text_key(text: str) -> bytes:
    """What the findings of a text are kept by: its SHA-256 digest, never the text."""
    return digest(text)


class _Findings:
    """``check.find`` memoised by the SHA-256 digest of the text, never the text itself (the
    memory must not keep what users wrote, whatever the policy records), bounded in bytes;
    thread-safe, as a heavy policy is evaluated on worker threads. A text not in the memo is
    charged to the event loop's scan budget first (``charge_scan``): a long new text is read
    on a thread, not on the loop."""

    def __init__(self, check: Check) -> None:
        self._check = check
        self.cache: DigestCache[bytes, tuple[Finding, ...]] = DigestCache(
            FINDINGS_BYTES, findings_size
        )

    def __call__(self, text: str, key: bytes | None = None) -> tuple[Finding, ...]:
        """The check's findings in ``text``; ``key`` is its ``text_key`` when the caller has
        it already (every rule of a stage reads the same texts: one digest each)."""
        key = key if key is not None else text_key(text)
        found = self.cache.get(key)
        if found is not None:
            return found
        charge_scan(key, len(text))
        found = tuple(self._check.find(text))  # outside any lock: a model may take a while
        self.cache.put(key, found)
        return found


#: detectors whose findings are personal data or secrets by nature
SENSITIVE_DETECTORS = frozenset({"pii"})


@dataclass(frozen=True, slots=True)
class CompiledRule:
    spec: Rule
    check: Check
    #: ``check.find`` memoised per text: detectors are pure, and a chat resends its whole
    #: history with every turn, so only new messages cost a scan. Built once per revision.
    find: _Findings = field(init=False, repr=False, compare=False)
    #: the spec's words as the enums the gateway compares them with, read once per revision
    action: Action = field(init=False, repr=False, compare=False)
    mode: Mode = field(init=False, repr=False, compare=False)
    stage: Stage = field(init=False, repr=False, compare=False)
    on_error: OnError = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "find", _Findings(self.check))
        object.__setattr__(self, "action", Action(self.spec.action))
        object.__setattr__(self, "mode", Mode(self.spec.mode))
        object.__setattr__(self, "stage", Stage(self.spec.stage))
        object.__setattr__(self, "on_error", OnError(self.spec.on_error))

    @property
    def id(self) -> str:
        return self.spec.id

    def applies_to(self, stage: str) -> bool:
        return self.stage in (stage, Stage.BOTH)

    @property
    def sensitive(self) -> bool:
        """Whether a redacted record removes what this rule finds (personal data, secrets)
        rather than keep it as the evidence a reviewer judges the rule by."""
        if self.spec.sensitive is not None:
            return self.spec.sensitive
        return self.spec.detector in SENSITIVE_DETECTORS or self.action == Action.REDACT


@dataclass(frozen=True, slots=True)
class Guideline:
    queue: str
    path: Path
    revision: str
    text: str


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    revision: str
    text: str
    path: Path
    rules: tuple[CompiledRule, ...]
    scope: ScopeClassifier | None
    guidelines: dict[str, Guideline] = field(default_factory=dict)
    #: per stage: its rules, and whether evaluating it runs a model (worked out once a revision)
    _stages: dict[str, tuple[CompiledRule, ...]] = field(init=False, repr=False, compare=False)
    _heavy: dict[str, bool] = field(init=False, repr=False, compare=False)
    _longest: int = field(init=False, repr=False, compare=False)
    _tools: ToolScope = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stages = {
            stage: tuple(rule for rule in self.rules if rule.applies_to(stage))
            for stage in (Stage.INPUT, Stage.OUTPUT)
        }
        heavy = {
            stage: any(is_heavy(rule.check) for rule in rules)
            or (stage == Stage.INPUT and is_heavy(self.scope))
            for stage, rules in stages.items()
        }
        longest = max((_held_for(rule) for rule in stages[Stage.OUTPUT]), default=0)
        object.__setattr__(self, "_stages", stages)
        object.__setattr__(self, "_heavy", heavy)
        object.__setattr__(self, "_longest", longest)
        object.__setattr__(self, "_tools", ToolScope(self.policy.tools))

    @property
    def tools(self) -> ToolScope:
        """The tool-call scope, compiled once a revision: every path's one tool check."""
        return self._tools

    @property
    def context(self) -> str:
        return self.policy.context

    @property
    def short_revision(self) -> str:
        return self.revision[:12]

    def rules_for(self, stage: str) -> tuple[CompiledRule, ...]:
        found = self._stages.get(stage)
        if found is None:  # "both", say: worked out when asked
            return tuple(rule for rule in self.rules if rule.applies_to(stage))
        return found

    @property
    def heavy(self) -> bool:
        """Whether evaluating this policy runs a model (a heavy rule check or scope): the
        pipeline then evaluates it in the detector pool rather than on the event loop."""
        return any(is_heavy(rule.check) for rule in self.rules) or is_heavy(self.scope)

    def heavy_at(self, stage: str) -> bool:
        """Whether one stage's evaluation runs a model: the input stage's rules or the topic
        scope (which reads the input), or the output stage's rules. A stream's guard needs no
        thread hop per chunk when only the scope is a model."""
        return self._heavy[stage]

    @property
    def sensitive_rules(self) -> tuple[CompiledRule, ...]:
        return tuple(rule for rule in self.rules if rule.sensitive)

    @property
    def hold_back(self) -> int:
        """Characters a stream must hold back so no output rule's match can slip through,
        unless the policy sets a shorter (or longer) window of its own."""
        if self.policy.stream.hold_back is not None:
            return self.policy.stream.hold_back
        return self.longest_match

    @property
    def longest_match(self) -> int:
        """The longest span an enforced blocking or redacting output rule can match (for a
        heavy one, at least its scan step): the text a stream holds back by default. A shadow
        rule never blocks or redacts, so it holds nothing back; the guard still scans it."""
        return self._longest


def _held_for(rule: CompiledRule) -> int:
    if rule.mode == Mode.SHADOW or rule.action not in (Action.BLOCK, Action.REDACT):
        return 0
    span = rule.check.max_span
    return max(span, STREAM_STEP) if is_heavy(rule.check) else span
