"""Output rules on a stream: hold back just enough text that no match can slip out.

Each choice's text is scanned as it grows. A rule's scan reaches ``max_span`` characters behind
where its previous scan ended, so every match up to that long is found, and a whole-text
verdict (a classifier's) judges the answer up to its window. A light (pattern) rule is scanned
on every chunk; a heavy one (``heavy = True``: a model) only once the text has grown by
``STREAM_STEP`` characters since its last scan, or by ``STREAM_SENTENCE_STEP`` and ends a
sentence, and once more at the end before the rest is released. Text is released up to
``hold`` characters short of the end (``hold`` is the longest span any enforced blocking or
redacting rule can match, a heavy one's at least its step), never past what an enforced
blocking or redacting heavy rule has scanned, and never in the middle of a span to redact;
redactions happen inside the stream. A block that answers (``block_as: answer``) ends its
choice with the rule's refusal, as the whole answer would; a block that errs ends the stream.
A whole-text finding is one piece of evidence per rule and choice (the highest score), however
many scans found it. A shadow rule's findings are recorded and nothing else: they neither
block, redact nor hold text back.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from gateway.checks.base import Finding
from gateway.errors import PolicyUnavailable
from gateway.pipeline.stream_text import apply_spans
from gateway.policy.compiled import (
    STREAM_SENTENCE_STEP,
    STREAM_STEP,
    CompiledPolicy,
    CompiledRule,
    is_heavy,
)
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.enforce import refusal_text
from gateway.policy.engine import failure_enforced, new_outcome

_SENTENCE_END = re.compile(r"[.!?\n\u3002\uff01\uff1f]")


@dataclass(slots=True)
class _Choice:
    raw: str = ""
    released: int = 0
    started: bool = False
    refused: bool = False
    spans: dict[tuple[int, int], str] = field(default_factory=dict)
    #: rule id → the length of the text when the rule last scanned it
    scanned: dict[str, int] = field(default_factory=dict)
    #: rule id → where its whole-text finding is in the outcome's evidence
    whole: dict[str, int] = field(default_factory=dict)


class Blocked(Exception):
    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule.id)
        self.rule = rule


def _gates(rule: CompiledRule) -> bool:
    """Whether the release waits for the rule's scan: an enforced heavy block or redact."""
    return (
        is_heavy(rule.check)
        and rule.spec.mode != "shadow"
        and rule.spec.action in ("block", "redact")
    )


def _due(rule: CompiledRule, choice: _Choice) -> bool:
    """Whether the rule scans the choice's text now: a light rule on every chunk, a heavy
    one once the text grew by a step (or by a shorter step that ends a sentence)."""
    last = choice.scanned.get(rule.id, 0)
    grown = len(choice.raw) - last
    if grown <= 0:
        return False
    if grown >= STREAM_STEP or not is_heavy(rule.check):
        return True
    return (
        grown >= STREAM_SENTENCE_STEP
        and _SENTENCE_END.search(choice.raw, last + STREAM_SENTENCE_STEP - 1) is not None
    )


class OutputGuard:
    def __init__(self, policy: CompiledPolicy, decision: Decision, *, disclose: bool) -> None:
        self._policy = policy
        self._rules = policy.rules_for("output")
        self._gating = tuple(rule for rule in self._rules if _gates(rule))
        self._hold = policy.hold_back
        self._decision = decision
        notice = policy.policy.disclosure.notice.strip() if policy.policy.disclosure else None
        self._notice = notice if disclose else None
        self._choices: dict[int, _Choice] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._seen: set[tuple[str, int, int, int]] = set()

    @property
    def active(self) -> bool:
        return bool(self._rules) or self._notice is not None

    def feed(self, index: int, text: str) -> str:
        """Take new text of a choice; return what may be released now. Raises Blocked."""
        choice = self._choices.setdefault(index, _Choice())
        if choice.refused:
            return ""
        choice.raw += text
        for rule in self._rules:
            if _due(rule, choice):
                self._scan(rule, index, choice)
        return self._release(choice, final=False)

    def finish(self, index: int) -> str:
        """The choice ended: every rule scans what it has not seen yet (a heavy rule's last
        scan), then everything still held back is released. Raises Blocked."""
        choice = self._choices.setdefault(index, _Choice())
        if choice.refused:
            return ""
        for rule in self._rules:
            if choice.scanned.get(rule.id, 0) < len(choice.raw):
                self._scan(rule, index, choice)
        return self._release(choice, final=True)

    def refuse(self, index: int, rule: CompiledRule) -> str | None:
        """End a blocked choice with the rule's refusal (after the notice, if nothing was
        released yet); None when the rule blocks with an error instead."""
        refusal = refusal_text(rule, self._policy)
        if refusal is None:
            return None
        choice = self._choices.setdefault(index, _Choice())
        if choice.started:
            refusal = f"\n\n{refusal}"
        elif self._notice is not None:
            refusal = f"{self._notice}\n\n{refusal}"
        choice.started = choice.refused = True
        return refusal

    def refused(self, index: int) -> bool:
        choice = self._choices.get(index)
        return choice is not None and choice.refused

    def unfinished(self) -> list[int]:
        return sorted(i for i, choice in self._choices.items() if not choice.refused)

    def _scan(self, rule: CompiledRule, index: int, choice: _Choice) -> None:
        """Scan from ``max_span`` characters before the rule's last scan ended to the end."""
        start = max(0, choice.scanned.get(rule.id, 0) - rule.check.max_span)
        window = choice.raw[start:]
        choice.scanned[rule.id] = len(choice.raw)
        for finding in self._find(rule, window):
            whole = finding.start == 0 and finding.end == len(window)
            if self._record(rule, index, choice, finding, start, whole=whole):
                self._enforce(rule, choice, finding, start, whole=whole)

    def _record(
        self,
        rule: CompiledRule,
        index: int,
        choice: _Choice,
        finding: Finding,
        start: int,
        *,
        whole: bool,
    ) -> bool:
        """Put the finding in the rule's evidence; False when it was found before."""
        begin, end = finding.start + start, finding.end + start
        key = (rule.id, index, begin, end)
        if key in self._seen:
            return False
        self._seen.add(key)
        outcome = self._outcome(rule)
        evidence = Evidence(index, begin, end, finding.label, finding.score, source=finding.source)
        at = choice.whole.get(rule.id) if whole else None
        if at is None:
            if whole:
                choice.whole[rule.id] = len(outcome.evidence)
            outcome.evidence.append(evidence)
        elif evidence.score >= outcome.evidence[at].score:
            outcome.evidence[at] = evidence  # the same verdict on more of the text
        return True

    def _enforce(
        self, rule: CompiledRule, choice: _Choice, finding: Finding, start: int, *, whole: bool
    ) -> None:
        outcome = self._outcome(rule)
        action = rule.spec.action
        if outcome.shadow or action not in ("block", "redact"):
            return  # a shadow rule's finding is recorded, never enforced
        begin, end = finding.start + start, finding.end + start
        if begin < choice.released and not whole:
            outcome.note = self._sent_note(choice.released - begin)
        if action == "block":
            raise Blocked(rule)
        choice.spans[(begin, end)] = rule.spec.replacement.format(label=finding.label)

    def _sent_note(self, sent: int) -> str:
        return (
            f"{sent} characters of a match were already sent when it was found: the stream's "
            f"hold_back ({self._hold}) is shorter than the match; the rest was not released"
        )

    def _find(self, rule: CompiledRule, text: str) -> list:  # type: ignore[type-arg]
        outcome = self._outcome(rule)
        started = time.perf_counter()
        try:
            return rule.check.find(text)
        except Exception as exc:  # a failing check: closed unless the rule says open
            outcome.error = f"{type(exc).__name__}: {exc}"[:500]
            outcome.enforced = failure_enforced(rule)
            if outcome.enforced == "fail_closed":
                raise PolicyUnavailable(
                    f"A check of the policy failed (rule '{rule.id}')."
                ) from exc
            return []
        finally:
            outcome.duration_ms += (time.perf_counter() - started) * 1000

    def _outcome(self, rule: CompiledRule) -> Outcome:
        outcome = self._outcomes.get(rule.id)
        if outcome is None:
            outcome = self._outcomes[rule.id] = new_outcome(rule, "output")
        return outcome

    def _release(self, choice: _Choice, *, final: bool) -> str:
        end = len(choice.raw) if final else max(choice.released, len(choice.raw) - self._hold)
        for rule in self._gating:  # nothing an enforced model has not read yet
            end = min(end, max(choice.released, choice.scanned.get(rule.id, 0)))
        for begin, stop in choice.spans:
            if begin < end < stop:
                end = begin  # never cut a span to redact in two
        text = apply_spans(choice.raw, choice.released, end, choice.spans)
        choice.released = max(choice.released, end)
        if text and not choice.started and self._notice is not None:
            text = f"{self._notice}\n\n{text}"
        choice.started = choice.started or bool(text)
        return text

    def close(self, blocked: CompiledRule | None) -> None:
        """Put the outcomes on the decision, with what was enforced."""
        for rule_id, outcome in self._outcomes.items():
            self._decision.timings[f"output:{rule_id}"] = outcome.duration_ms
            if outcome.fired and outcome.enforced == "none":
                moot = blocked is not None and outcome.action == "redact"
                outcome.enforced = "none" if moot else outcome.action
            self._decision.add(outcome)
