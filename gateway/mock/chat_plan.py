"""What the mock answers a chat request with, decided before any I/O: the reply text in
stream pieces, or tool calls in its place."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from gateway.mock.script import Fault
from gateway.mock.tools import ToolCall

# A word and the whitespace after it, so streamed deltas concatenate back to the text.
_WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply text pre-split into stream pieces, with each piece's delta JSON."""

    pieces: tuple[str, ...]
    deltas: tuple[str, ...]

    @classmethod
    def of(cls, text: str, chunk_chars: int | None = None) -> Reply:
        if chunk_chars:  # fixed-size pieces, which may cut a word (or a key) in two
            text = text.rstrip()
            pieces = [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
            return cls(tuple(pieces), tuple(_content_delta(p) for p in pieces))
        pieces = _WORD.findall(text)
        if pieces:
            pieces[-1] = pieces[-1].rstrip()
        return cls(tuple(pieces), tuple(_content_delta(p) for p in pieces))

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def truncated(self, words: int) -> Reply:
        return Reply.of("".join(self.pieces[:words]))


NO_REPLY = Reply((), ())


def _content_delta(piece: str) -> str:
    return '{"content":' + json.dumps(piece) + "}"


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """Everything needed to answer one chat request, decided before any I/O."""

    model: str
    stream: bool
    n: int
    include_usage: bool
    reply: Reply
    finish_reason: str
    usage: dict[str, int]
    token_delay: float
    fault: Fault | None
    tool_calls: tuple[ToolCall, ...] = ()
    legacy_function: bool = False  # answered as `function_call` (the request gave `functions`)
    top_logprobs: int | None = None  # logprobs asked for, with this many alternatives


