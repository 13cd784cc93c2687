"""The output stage: a policy's output rules on an answer, whole or streamed, in one place.

Each choice's text is scanned as it grows, every rule on the schedule ``output_scan`` draws: a
scan reaches ``max_span`` characters behind where the rule's previous scan ended, so every
match up to that long is found, and a whole-text verdict (a classifier's) judges the answer up
to its window; a heavy rule (a model) scans once per step of text, a pattern rule as soon as
what it has not read could be released (or, for one that changes nothing released, once per
longer step), and every rule once more at the end. Text is kept as a tail that is only joined
when read (``stream_text``), so a piece costs its own length plus the scans it makes due.

Text is released up to ``hold`` characters short of the end (``hold`` is the longest span any
enforced blocking or redacting rule can match, a heavy one's at least its step), never past
what an enforced blocking or redacting heavy rule has scanned or where a match an enforced
pattern rule has not read yet could begin, and never in the middle of a span to redact. A
block that answers (``block_as: answer``) ends its choice with the rule's refusal; a block
that errs ends the answer. A whole-text finding is one piece of evidence per
rule and choice (the highest score), however many scans found it. A shadow rule's findings
are recorded and nothing else: they neither block, redact nor hold text back.

A whole answer (``answer``) is the same stage with every choice's text scanned at once: the
rules in order, each over every choice. Choices are held to the rules one by one, so a block in
one does not moot a redaction in another; token logprobs go where a block or redaction applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.checks.base import Finding
from gateway.errors import PolicyUnavailable, PolicyViolation
from gateway.pipeline.output_scan import ScanPlan
from gateway.pipeline.stream_text import Spans, StreamText
from gateway.policy.compiled import CompiledPolicy, CompiledRule
from gateway.policy.decision import Decision, Evidence
from gateway.policy.engine import failure_enforced, new_outcome
from gateway.policy.judge import refusal_text


class Blocked(Exception):
    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule.id)
        self.rule = rule


@dataclass(slots=True)
class _Choice:
    text: StreamText = field(default_factory=StreamText)
    released: int = 0
    started: bool = False
    refused: bool = False
    spans: Spans = field(default_factory=Spans)
    #: rule id → the length of the text when the rule last scanned it
    scanned: dict[str, int] = field(default_factory=dict)
    #: rule id → where its whole-text finding is in the outcome's evidence
    whole: dict[str, int] = field(default_factory=dict)
    #: rules whose last scan left findings for more text to settle
    deferred: set[str] = field(default_factory=set)
    #: the first rule (in the policy's order) whose enforced block was found
    blocking: CompiledRule | None = None
    #: an enforced block or redaction applied: the token logprobs would spell out the text
    touched: bool = False


class OutputStage:
    def __init__(self, policy: CompiledPolicy, decision: Decision, *, disclose: bool) -> None:
        self._policy = policy
        self._hold = policy.hold_back
        self._plans = tuple(ScanPlan.of(rule, self._hold) for rule in policy.rules_for("output"))
        self._gating = tuple(plan for plan in self._plans if plan.gates)
        self._bounding = tuple(plan for plan in self._plans if plan.bounds)
        self._decision = decision
        notice = policy.policy.disclosure.notice.strip() if policy.policy.disclosure else None
        self._notice = notice if disclose else None
        self._choices: dict[int, _Choice] = {}
        self._outcomes = {plan.rule.id: new_outcome(plan.rule, "output") for plan in self._plans}
        self._ran: set[str] = set()
        self._seen: set[tuple[str, int, int, int]] = set()
        self._whole_answer = False

    @property
    def active(self) -> bool:
        return bool(self._plans) or self._notice is not None

    # A stream, a piece at a time.

    def _choice(self, index: int) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
        return choice

    def feed(self, index: int, text: str) -> str:
        """Take new text of a choice; return what may be released now. Raises Blocked."""
        choice = self._choice(index)
        if choice.refused:
            return ""
        choice.text.append(text)
        self._step(index, choice, final=False)
        return self._release(choice, final=False)

    def finish(self, index: int) -> str:
        """The choice ended: every rule scans what it has not read yet (a heavy rule's last
        scan), then everything still held back is released. Raises Blocked."""
        choice = self._choice(index)
        if choice.refused:
            return ""
        self._step(index, choice, final=True)
        return self._release(choice, final=True)

    def models_due(self, index: int, text: str, *, final: bool) -> bool:
        """Whether feeding ``text`` (and finishing, if ``final``) may run a heavy rule: the
        caller moves only that work off the event loop."""
        choice = self._choice(index)
        if choice.refused:
            return False
        return any(
            plan.due_with(choice.text, choice.scanned.get(plan.id, 0), text, final=final)
            for plan in self._plans
            if plan.heavy
        )

    def refuse(self, index: int, rule: CompiledRule) -> str | None:
        """End a blocked choice with the rule's refusal (after the notice, if nothing was
        released yet); None when the rule blocks with an error instead."""
        refusal = refusal_text(rule, self._policy)
        if refusal is None:
            return None
        choice = self._choice(index)
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

    def close(self, blocked: CompiledRule | None) -> None:
        """Put the outcomes on the decision, with what was enforced: a redaction is moot when
        a block ended the whole answer with an error (nothing of it went out). A stream cut
        short is read to its end by the light rules first, so the record holds what they find
        in it, as the choice's end would have."""
        for index, choice in self._choices.items():
            if not choice.refused:
                self._catch_up(index, choice, stop_on_failure=True)
        self._settle(blocked, enforce=True)

    def _catch_up(self, index: int, choice: _Choice, *, stop_on_failure: bool = False) -> None:
        """Every light rule reads what it has not read yet."""
        for plan in self._plans:
            if not plan.heavy and self._due(plan, choice, final=True):
                try:
                    self._scan(plan, index, choice, final=True)
                except PolicyUnavailable:
                    if not stop_on_failure:
                        raise
                    return  # the outcome says the check failed; nothing more goes out anyway

    # A whole answer, in place.

    def answer(self, answer: dict[str, Any]) -> bool:
        """Hold a whole answer to the output rules, in place; True when it was changed.
        Raises PolicyViolation for a block that errs, PolicyUnavailable for a check that
        failed closed; the decision has the outcomes either way."""
        self._whole_answer = True
        choices = [c for c in answer.get("choices") or () if isinstance(c, dict)]
        texts = {i: _content(c) for i, c in enumerate(choices)}
        for i, text in texts.items():
            if text is not None:
                self._choices[i] = _Choice(StreamText(text))
        try:
            for plan in self._plans:
                self._ran.add(plan.rule.id)
                for i, choice in self._choices.items():
                    self._scan(plan, i, choice, final=True)
        except PolicyUnavailable:
            self._settle(None, enforce=False)
            raise
        erring = self._erring()
        self._settle(erring, enforce=True)
        if erring is not None:
            raise PolicyViolation(erring.id, erring.spec.why, "output")
        changed = any(choice.touched for choice in self._choices.values())
        for i, choice in self._choices.items():
            self._apply(choices[i], choice)
        if self._notice is not None and choices:
            for i in self._choices:
                message = choices[i]["message"]
                message["content"] = f"{self._notice}\n\n{message['content']}"
            self._decision.disclosure = changed = True
        return changed

    def _erring(self) -> CompiledRule | None:
        """The first rule (in the policy's order) that blocks a choice with an error."""
        order = {plan.rule.id: n for n, plan in enumerate(self._plans)}
        erring = [
            c.blocking
            for c in self._choices.values()
            if c.blocking is not None and refusal_text(c.blocking, self._policy) is None
        ]
        return min(erring, key=lambda rule: order[rule.id], default=None)

    def _apply(self, target: dict[str, Any], choice: _Choice) -> None:
        message = target["message"]
        if choice.blocking is not None:
            refusal = refusal_text(choice.blocking, self._policy)
            message.update(content=refusal, refusal=refusal)
            for field in ("tool_calls", "function_call"):  # a blocked choice calls nothing
                if message.get(field) is not None:
                    message[field] = None
            target["finish_reason"] = "content_filter"
        elif choice.spans:
            message["content"] = choice.spans.cut(choice.text, 0, choice.text.size)
        if choice.touched:
            target["logprobs"] = None

    # Scanning, shared.

    def _step(self, index: int, choice: _Choice, *, final: bool) -> None:
        """Every rule due scans the new text; a block found (the first rule's, in the
        policy's order) raises once every light rule has read the text so far."""
        size, scanned = choice.text.size, choice.scanned
        for plan in self._plans:
            grown = size - scanned.get(plan.id, 0)
            maybe = grown > plan.lag or final or plan.heavy  # else not due: skip the call
            if maybe and self._due(plan, choice, final=final):
                self._scan(plan, index, choice, final=final)
        if choice.blocking is not None:
            self._catch_up(index, choice)
            raise Blocked(choice.blocking)

    def _due(self, plan: ScanPlan, choice: _Choice, *, final: bool) -> bool:
        last = choice.scanned.get(plan.id, 0)
        waiting = plan.id in choice.deferred
        return plan.due(choice.text, last, waiting=waiting, final=final)

    def _scan(self, plan: ScanPlan, index: int, choice: _Choice, *, final: bool) -> None:
        """Scan from ``max_span`` characters before the rule's last scan ended to the end."""
        rule = plan.rule
        self._ran.add(rule.id)
        last, span = choice.scanned.get(rule.id, 0), rule.check.max_span
        start = max(0, last - span)
        window = choice.text.read(start)
        size = choice.text.size
        choice.scanned[rule.id] = size
        found = self._find(rule, window)
        choice.deferred.discard(rule.id)
        if not final and any(plan.waits(f.start + start, size) for f in found):
            choice.deferred.add(rule.id)
        found = [f for f in found if plan.settled(f.start + start, last, size, final=final)]
        for finding in found:
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
        outcome = self._outcomes[rule.id]
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
        outcome = self._outcomes[rule.id]
        action = rule.spec.action
        if outcome.shadow or action not in ("block", "redact"):
            return  # a shadow rule's finding is recorded, never enforced
        choice.touched = True
        begin, end = finding.start + start, finding.end + start
        if begin < choice.released and not whole:
            outcome.note = self._sent_note(choice.released - begin)
        if action == "block":
            choice.blocking = choice.blocking or rule
        elif end > choice.released:
            choice.spans.add((begin, end, rule.spec.replacement.format(label=finding.label)))

    def _sent_note(self, sent: int) -> str:
        return (
            f"{sent} characters of a match were already sent when it was found: the stream's "
            f"hold_back ({self._hold}) is shorter than the match; the rest was not released"
        )

    def _find(self, rule: CompiledRule, text: str) -> list[Finding]:
        outcome = self._outcomes[rule.id]
        started = time.perf_counter()
        try:
            return list(rule.check.find(text))
        except Exception as exc:  # a failing check: closed unless the rule says open
            outcome.error = f"{type(exc).__name__}: {exc}"[:500]
            outcome.enforced = failure_enforced(rule)
            if outcome.enforced == "fail_closed":
                raise self._unavailable(rule) from exc
            return []
        finally:
            outcome.duration_ms += (time.perf_counter() - started) * 1000

    def _unavailable(self, rule: CompiledRule) -> PolicyUnavailable:
        if self._whole_answer:
            return PolicyUnavailable(
                f"A check of the deployment's policy failed (rule '{rule.id}'); "
                "the request was not processed.",
                headers={"retry-after": "1"},
            )
        return PolicyUnavailable(f"A check of the policy failed (rule '{rule.id}').")

    def _release(self, choice: _Choice, *, final: bool) -> str:
        size, released = choice.text.size, choice.released
        end = size if final else max(released, size - self._hold)
        if not final:
            end = min(end, self._unread_from(choice))
        end = choice.spans.not_inside(end)  # never cut a span to redact in two
        text = choice.spans.cut(choice.text, released, end)
        choice.released = max(released, end)
        if choice.text.forgets(choice.released):
            choice.text.forget(self._oldest_read(choice))
        if text and not choice.started and self._notice is not None:
            text = f"{self._notice}\n\n{text}"
        choice.started = choice.started or bool(text)
        return text

    def _unread_from(self, choice: _Choice) -> int:
        """Where text the release must wait for may begin: what an enforced model has not
        read, or a match an enforced pattern rule that lags has not read yet."""
        released, scanned, end = choice.released, choice.scanned, choice.text.size
        for plan in self._gating:
            end = min(end, max(released, scanned.get(plan.id, 0)))
        for plan in self._bounding:
            end = min(end, max(released, scanned.get(plan.id, 0) - plan.span + 1))
        return end

    def _oldest_read(self, choice: _Choice) -> int:
        """Where the text is still read from: the release, or a rule's next scan."""
        oldest = choice.released
        for plan in self._plans:
            oldest = min(oldest, choice.scanned.get(plan.id, 0) - plan.span)
        return oldest

    def _settle(self, blocked: CompiledRule | None, *, enforce: bool) -> None:
        for plan in self._plans:
            rule_id = plan.rule.id
            if rule_id not in self._ran:
                continue
            outcome = self._outcomes[rule_id]
            self._decision.timings[f"output:{rule_id}"] = outcome.duration_ms
            if enforce and outcome.fired and outcome.enforced == "none":
                moot = blocked is not None and outcome.action == "redact"
                outcome.enforced = "none" if moot else outcome.action
            self._decision.add(outcome)


def _content(choice: dict[str, Any]) -> str | None:
    message = choice.get("message")
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        content: str = message["content"]
        return content
    return None
