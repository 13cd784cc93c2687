"""Output rules on a stream: hold back just enough text that no match can slip out.

Each choice's text is scanned as it grows, over a window that reaches ``hold`` characters
behind what was already released (``hold`` is the longest span any blocking or redacting
rule can match). Text is released up to ``hold`` characters short of the end and never in
the middle of a span to redact; redactions happen inside the stream. A block that answers
(``block_as: answer``) ends its choice with the rule's refusal, as the whole answer would;
a block that errs ends the stream. A shadow rule's findings are recorded and nothing else:
they neither block nor redact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gateway.errors import PolicyUnavailable
from gateway.pipeline.stream_text import apply_spans
from gateway.policy.compiled import CompiledPolicy, CompiledRule
from gateway.policy.decision import Decision, Evidence, Outcome
from gateway.policy.enforce import refusal_text
from gateway.policy.engine import failure_enforced, new_outcome


@dataclass(slots=True)
class _Choice:
    raw: str = ""
    released: int = 0
    started: bool = False
    refused: bool = False
    spans: dict[tuple[int, int], str] = field(default_factory=dict)


class Blocked(Exception):
    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule.id)
        self.rule = rule


class OutputGuard:
    def __init__(self, policy: CompiledPolicy, decision: Decision, *, disclose: bool) -> None:
        self._policy = policy
        self._rules = policy.rules_for("output")
        self._hold = policy.hold_back
        self._reach = max(policy.hold_back, policy.longest_match)
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
        self._scan(index, choice)
        return self._release(choice, final=False)

    def finish(self, index: int) -> str:
        """The choice ended: release everything still held back."""
        choice = self._choices.setdefault(index, _Choice())
        return "" if choice.refused else self._release(choice, final=True)

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

    def _scan(self, index: int, choice: _Choice) -> None:
        start = max(0, choice.released - self._reach)
        window = choice.raw[start:]
        for rule in self._rules:
            for finding in self._find(rule, window):
                begin, end = finding.start + start, finding.end + start
                key = (rule.id, index, begin, end)
                if key in self._seen:
                    continue
                self._seen.add(key)
                outcome = self._outcome(rule)
                outcome.evidence.append(
                    Evidence(index, begin, end, finding.label, finding.score, source=finding.source)
                )
                if outcome.shadow:
                    continue  # recorded, never enforced
                if begin < choice.released:
                    outcome.note = self._sent_note(choice.released - begin)
                if rule.spec.action == "block":
                    raise Blocked(rule)
                if rule.spec.action == "redact":
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
