"""The mock upstream's script: which replies, delays and faults to produce.

A script is a list of rules; the first rule matching a chat request decides its
reply, pacing and fault. Scripts load from YAML or JSON so demos and tests can
describe misbehaving upstreams without code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Fault(BaseModel):
    """A way for the upstream to misbehave on one request.

    At most one of `status`, `drop_after`, `malformed_after` and
    `error_frame_after` may be set, because they are alternative endings of the
    same response. The `*_after` counters count content (word) chunks; when the
    reply has fewer chunks than the counter, the fault fires after the last one
    so a script never silently does nothing.
    """

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(default=None, ge=200, le=599)
    body: dict[str, Any] | None = None
    # A body that is not OpenAI's error shape (plain text, an HTML page, or "" for none),
    # as proxies and some servers answer; sent as it is, with `content_type`.
    text: str | None = None
    content_type: str = "text/plain; charset=utf-8"
    drop_after: int | None = Field(default=None, ge=0)
    malformed_after: int | None = Field(default=None, ge=0)
    error_frame_after: int | None = Field(default=None, ge=0)
    # `[DONE]` with no finish chunk, as llama-cpp-python's server cuts a stream short when
    # another request arrives (its interrupt_requests setting, on by default).
    done_after: int | None = Field(default=None, ge=0)
    first_byte_delay: float | None = Field(default=None, ge=0)
    # Response headers sent with `status` (a 429's Retry-After, say).
    headers: dict[str, str] = Field(default_factory=dict)
    # Raw bytes on the socket instead of a response, as a broken server or proxy sends them:
    # a header line over 8 KB, a status line that is not HTTP, a chunk size that is not hex.
    malformed: Literal["long_header", "bad_status", "bad_chunk"] | None = None
    # A stream whose chunked encoding breaks after this many content chunks (a chunk size
    # that is not hex), the connection then left open: nothing more ever arrives.
    broken_chunk_after: int | None = Field(default=None, ge=0)
    # The fault fires on the first `times` requests the rule matches (a counter per rule),
    # then the rule answers normally: retries become observable. None: always.
    times: int | None = Field(default=None, ge=0)

    def chunks_before(self) -> int | None:
        """How many content chunks a stream sends before its scripted ending, if it has one."""
        counters = (
            self.drop_after,
            self.malformed_after,
            self.error_frame_after,
            self.done_after,
            self.broken_chunk_after,
        )
        return next((c for c in counters if c is not None), None)

    @model_validator(mode="after")
    def _one_ending(self) -> Fault:
        endings = (
            self.status,
            self.drop_after,
            self.malformed_after,
            self.error_frame_after,
            self.done_after,
            self.malformed,
            self.broken_chunk_after,
        )
        if sum(e is not None for e in endings) > 1:
            raise ValueError(
                "set at most one of status, drop_after, malformed_after, error_frame_after, "
                "done_after, malformed, broken_chunk_after"
            )
        if self.headers and self.status is None:
            raise ValueError("headers only apply together with status")
        if (self.body is not None or self.text is not None) and self.status is None:
            raise ValueError("body and text only apply together with status")
        if self.body is not None and self.text is not None:
            raise ValueError("set body (JSON) or text, not both")
        return self


class ScriptedCall(BaseModel):
    """A tool call a rule answers with (the arguments as an object, or as JSON text)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Rule(BaseModel):
    """Matches a chat request; a rule with neither `contains` nor `model` matches all."""

    model_config = ConfigDict(extra="forbid")

    contains: str | None = None
    model: str | None = None
    reply: str | None = None
    fault: Fault | None = None
    token_delay: float | None = Field(default=None, ge=0)
    # Stream the reply in pieces of this many characters instead of a word a piece.
    chunk_chars: int | None = Field(default=None, ge=1)
    # The backend's own finish, e.g. "content_filter" for a provider's filter (Azure's).
    finish_reason: Literal["stop", "length", "content_filter"] | None = None
    # Answer with these calls (several: parallel calls) unless the last message is a tool's
    # result, whatever tools the request offers (so a test can see an undeclared call).
    tool_calls: list[ScriptedCall] = Field(default_factory=list)

    def matches(self, model: str, last_user_text: str) -> bool:
        if self.model is not None and self.model != model:
            return False
        return self.contains is None or self.contains in last_user_text


DEFAULT_ECHO = "Hello! This is the Situate demo backend. You said: {said}"


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    # The reply when no rule gives one; {said} is the last user message (its first 200 characters).
    echo: str = DEFAULT_ECHO
    token_delay: float = Field(default=0.0, ge=0)
    models: list[str] = Field(default_factory=lambda: ["mock-small", "mock-large"])
    embedding_dimensions: int = Field(default=8, ge=1, le=65536)
    # Like llama-cpp-python's server (starlette-context's RequestIdPlugin): an X-Request-ID
    # that is not a UUID is refused with a 400 and an empty body, before any route runs.
    uuid_request_id: bool = False
    # How long the server keeps an idle connection open (uvicorn's timeout_keep_alive; its
    # default is 5 s): shorter than a client pool's keep-alive, reused connections go stale.
    keep_alive_seconds: float = Field(default=5.0, gt=0)


def load_script(path: Path | None) -> Script:
    """Read a script from YAML (.yaml/.yml) or JSON (.json); None gives the defaults."""
    if path is None:
        return Script()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
    else:
        raise ValueError(f"mock script must be .yaml, .yml or .json, got {path.name!r}")
    # An empty YAML file parses to None; treat it as "no rules" rather than an error.
    return Script.model_validate(data if data is not None else {})
