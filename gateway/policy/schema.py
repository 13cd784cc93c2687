"""The policy file: one YAML file per deployment context. Strict: unknown keys are errors.

``docs/policies.md`` explains every field; ``gateway policy schema`` prints the JSON Schema
that editors can use.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Collection, Iterable
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SLUG = r"^[a-z0-9][a-z0-9_.-]{0,127}$"
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
Action = Literal["block", "redact", "flag", "warn", "route"]
DEFAULT_REFUSAL = "I can't help with that here."
DEFAULT_SCOPE_REFUSAL = "I can only help with {topics} here."
SEMANTIC_THRESHOLD = 0.35
SEMANTIC_MARGIN = 0.02
LEXICAL_THRESHOLD = 0.2


Loc = tuple[str | int, ...]


class Misplaced(ValueError):
    """Every problem a validator found, each at its location below the validated model: the
    loader reports each one at its own line (``rules[3].review``, not the policy's first line)."""

    def __init__(self, *problems: tuple[Loc, str]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Models(_Strict):
    allow: list[str] = Field(min_length=1, description="model aliases this context may call")
    default: str | None = Field(None, description="used when a request names no model")

    @model_validator(mode="after")
    def _default_is_allowed(self) -> Models:
        if self.default is not None and self.default not in self.allow:
            raise Misplaced((("default",), f"default model {self.default!r} is not in allow"))
        return self


class RateLimits(_Strict):
    """Rate limits and budgets: a context's (``limits.rate`` in its policy file) and a key's
    own (``api_keys.limits``) are the same shape, and a request must pass both. Unset: no
    limit. Windows are fixed (the UTC minute, day and month); ``docs/limits.md``."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(
        None, ge=1, description="estimated on admission (input + max_tokens), settled from usage"
    )
    tokens_per_day: int | None = Field(
        None, ge=1, description="a budget: refused until the UTC day ends"
    )
    concurrent_streams: int | None = Field(None, ge=1, description="streams open at once")
    spend_per_day: float | None = Field(
        None, gt=0, description="in the operator's currency (config: pricing)"
    )
    spend_per_month: float | None = Field(None, gt=0)

    @property
    def empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())


class Limits(_Strict):
    rate: RateLimits = Field(
        default_factory=RateLimits,
        description="requests, tokens, streams and spend per window (shared by every replica)",
    )
    max_input_tokens: int | None = Field(None, ge=1, description="estimated from the text")
    max_output_tokens: int | None = Field(None, ge=1)
    on_max_tokens: Literal["clamp", "reject"] = Field(
        "clamp", description="a larger max_tokens is lowered to the limit, or refused"
    )
    max_messages: int | None = Field(None, ge=1)
    max_n: int | None = Field(None, ge=1)


class Topic(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    examples: list[str] = Field([], description="messages that belong to this topic")
    counter_examples: list[str] = Field(
        [],
        description="messages that look close but are out of scope: they calibrate the"
        " semantic scope's boundary",
    )


class Scope(_Strict):
    topics: list[Topic] = []
    out_of_scope: Literal["refuse", "flag", "allow"] = "allow"
    refusal: str = Field(
        DEFAULT_SCOPE_REFUSAL,
        description="what an out-of-scope request is answered; {topics} becomes the topics' names",
    )
    refuse_as: Literal["answer", "error"] = "answer"
    classifier: Literal["semantic", "lexical"] = Field(
        "semantic",
        description="semantic: sentence embeddings (multilingual); lexical: shared words, the"
        " no-model fallback",
    )
    threshold: float = Field(
        SEMANTIC_THRESHOLD,
        ge=0,
        le=1,
        description="the least topic score in scope: for semantic, the least mean cosine"
        " similarity of the two texts of a topic nearest the message (default"
        f" {SEMANTIC_THRESHOLD}); for lexical, the least share of words found in a topic"
        f" (default {LEXICAL_THRESHOLD})",
    )
    margin: float = Field(
        SEMANTIC_MARGIN,
        ge=-1,
        le=1,
        description="semantic only: how much nearer a topic than the counter-examples a message"
        " must be (mean cosine similarity of the two nearest of each); nearer the"
        " counter-examples than that, it is out of scope",
    )
    min_words: int = Field(
        3, ge=0, description="shorter messages (greetings, follow-ups) are not judged"
    )

    @model_validator(mode="before")
    @classmethod
    def _threshold_for_classifier(cls, data: Any) -> Any:
        lexical = isinstance(data, dict) and data.get("classifier") == "lexical"
        if lexical and "threshold" not in data:
            return {**data, "threshold": LEXICAL_THRESHOLD}
        return data

    @model_validator(mode="after")
    def _topics_when_enforced(self) -> Scope:
        if self.out_of_scope != "allow" and not self.topics:
            raise Misplaced(
                (("out_of_scope",), "out_of_scope needs at least one topic to compare against")
            )
        return self

    @property
    def topic_names(self) -> str:
        """The topics as a reader says them: "cards, accounts and digital banking"."""
        names = [topic.name.replace("-", " ").replace("_", " ") for topic in self.topics]
        if not names:
            return "what this deployment is for"
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    @property
    def refusal_text(self) -> str:
        """The refusal with its ``{topics}`` placeholder filled (other braces stay as written)."""
        return self.refusal.replace("{topics}", self.topic_names)


class Rule(_Strict):
    id: str = Field(pattern=SLUG)
    stage: Literal["input", "output", "both"]
    why: str = Field(min_length=1, description="the written criterion reviewers and auditors read")
    detect: dict[str, Any] = Field(description="exactly one detector and its parameters")
    action: Action
    block_as: Literal["error", "answer"] = Field(
        "error", description="a block is an OpenAI error, or a refusal answer"
    )
    message: str | None = Field(None, description="the refusal text when blocking as an answer")
    replacement: str = Field("[{label}]", description="what a redacted span becomes")
    sensitive: bool | None = Field(
        None,
        description="a record kept with record.content: redacted removes what this rule finds;"
        " by default true for the pii detector and for action: redact, false otherwise",
    )
    route_to: str | None = Field(None, description="the allowed model a route action sends to")
    review: str | None = Field(None, description="the review queue for flagged exchanges")
    on_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    mode: Literal["enforce", "shadow"] = Field(
        "enforce",
        description="shadow: evaluated and recorded (and routed to review) but never enforced,"
        " to measure a new rule or threshold on live traffic before it acts",
    )
    roles: list[Role] = Field(["user", "tool"], description="input messages this rule reads")

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if len(self.detect) != 1:
            raise Misplaced((("detect",), "detect must name exactly one detector"))
        if (self.action == "route") != (self.route_to is not None):
            where = "action" if self.route_to is None else "route_to"
            raise Misplaced(((where,), "route_to goes with action: route, and only with it"))
        return self

    @property
    def detector(self) -> str:
        return next(iter(self.detect))


class Disclosure(_Strict):
    notice: str = Field(min_length=1, description="shown on the first answer of a conversation")


class RecordPolicy(_Strict):
    content: Literal["full", "redacted", "none"] = "full"
    retention_days: int | None = Field(None, ge=1)


class Queue(_Strict):
    guidelines: str = Field(description="the guideline file, relative to the policy file")
    reviewers_per_item: int = Field(1, ge=1, le=10)


class StreamPolicy(_Strict):
    hold_back: int | None = Field(
        None,
        ge=1,
        description="characters of a streamed answer held back for the output rules; by default"
        " the longest span a blocking or redacting output rule can match (docs/policies.md)",
    )


class Review(_Strict):
    sample_rate: float = Field(0.0, ge=0, le=1)
    default_queue: str | None = None
    queues: dict[str, Queue] = {}

    @model_validator(mode="after")
    def _default_exists(self) -> Review:
        problems: list[tuple[Loc, str]] = [
            (("queues", name), f"queue name {name!r} must match {SLUG} (it is part of URLs)")
            for name in self.queues
            if not re.match(SLUG, name)
        ]
        if self.default_queue is not None and self.default_queue not in self.queues:
            problems.append(
                (("default_queue",), f"default_queue {self.default_queue!r} is not a queue")
            )
        if problems:
            raise Misplaced(*problems)
        return self


class ToolRule(_Strict):
    """One tool (or a pattern of names) a context may declare and call, and the arguments a
    call must have (a JSON Schema)."""

    name: str = Field(
        min_length=1, description="a tool's name, or a pattern of names with * and ? (fnmatch)"
    )
    arguments: dict[str, Any] | None = Field(
        None, description="a JSON Schema the call's arguments must satisfy (draft 2020-12)"
    )

    @model_validator(mode="after")
    def _schema_is_valid(self) -> ToolRule:
        if self.arguments is not None:
            problem = schema_problem(self.arguments)
            if problem is not None:
                raise Misplaced((("arguments",), f"not a valid JSON Schema: {problem}"))
        return self


class Tools(_Strict):
    """Tool-call scope (``docs/policies.md``): which tools may be declared to the model and
    called by it, on every path (chat completions, the Responses API, streaming or not)."""

    allow: list[ToolRule] = Field(
        [], description="the tools in scope: a name, a pattern, or {name, arguments}; none: none"
    )
    on_declared: Literal["remove", "refuse"] = Field(
        "remove",
        description="a declared tool outside scope is removed before the model sees it, or"
        " the request is refused",
    )
    on_call: Literal["block", "flag", "warn"] = Field(
        "block",
        description="a call of a tool outside scope, or with arguments that break its schema:"
        " removed from the answer (block), or passed and flagged for review, or passed and"
        " recorded (warn)",
    )
    review: str | None = Field(None, description="the review queue for tool decisions")
    refusal: str = Field(
        "I can't use that tool here.",
        description="what the answer says when every call it made was blocked",
    )

    @model_validator(mode="before")
    @classmethod
    def _names_alone(cls, data: Any) -> Any:
        """``allow: [lookup, "search_*"]`` is short for ``[{name: lookup}, ...]``."""
        if isinstance(data, dict) and isinstance(data.get("allow"), list):
            allow = [{"name": a} if isinstance(a, str) else a for a in data["allow"]]
            return {**data, "allow": allow}
        return data


def load_jsonschema() -> ModuleType:
    """``jsonschema``, imported on first use, without the IRI format checkers.

    Importing jsonschema imports ``rfc3987_syntax`` where it is installed (guardrails-ai's
    ``jsonschema[format-nongpl]`` installs it), and that compiles some forty Earley grammars at
    import: 2.6 s on this machine, at every process's first policy with a tool schema (``gateway
    serve``, every command that reads the policies). The gateway never checks formats (a tool's
    arguments are validated without a format checker; a schema's own check needs ``uri`` and
    ``regex``, not ``iri``), so the import runs with that module hidden: its ``iri`` and
    ``iri-reference`` checkers are left out, nothing else changes. Where jsonschema or
    rfc3987_syntax is already imported (by guardrails, say), it is used as it is.
    """
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return importlib.import_module("jsonschema")
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        return importlib.import_module("jsonschema")
    finally:
        del sys.modules["rfc3987_syntax"]


def schema_problem(schema: dict[str, Any]) -> str | None:
    """What is wrong with a JSON Schema, or None when it is valid."""
    jsonschema = load_jsonschema()  # lazily: see gateway.policy.tools._compile

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None


class Policy(_Strict):
    context: str = Field(pattern=SLUG)
    purpose: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="who is accountable for this deployment")
    audience: str = Field(min_length=1)
    models: Models
    limits: Limits = Limits()
    scope: Scope = Scope()
    rules: list[Rule] = []
    disclosure: Disclosure | None = None
    record: RecordPolicy = RecordPolicy()
    stream: StreamPolicy = StreamPolicy()
    review: Review = Review()
    tools: Tools | None = Field(
        None, description="tool-call scope; absent: tools are not governed (passed as sent)"
    )

    @model_validator(mode="after")
    def _references(self) -> Policy:
        problems = cross_references(enumerate(self.rules), self.models.allow, self.review.queues)
        queue = self.tools.review if self.tools else None
        if queue is not None and queue not in self.review.queues:
            problems.append(
                (("tools", "review"), f"review queue {queue!r} is not defined in review.queues")
            )
        if problems:
            raise Misplaced(*problems)
        return self


def cross_references(
    rules: Iterable[tuple[int, Rule]], allowed: Collection[str] | None, queues: Collection[str]
) -> list[tuple[Loc, str]]:
    """Rule ids used twice, routes to models not allowed, reviews in queues not defined."""
    problems: list[tuple[Loc, str]] = []
    seen: set[str] = set()
    for index, rule in rules:
        if rule.id in seen:
            problems.append((("rules", index, "id"), f"rule id {rule.id!r} is used twice"))
        seen.add(rule.id)
        if allowed is not None and rule.route_to is not None and rule.route_to not in allowed:
            problems.append(
                (("rules", index, "route_to"), f"{rule.route_to!r} is not in models.allow")
            )
        if rule.review is not None and rule.review not in queues:
            problems.append(
                (
                    ("rules", index, "review"),
                    f"review queue {rule.review!r} is not defined in review.queues",
                )
            )
    return problems
