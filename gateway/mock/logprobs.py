"""Deterministic log probabilities for the mock's tokens (its stream pieces).

A token's logprob depends only on its text, so the same answer has the same logprobs; the
alternatives in `top_logprobs` are the token itself first, then variants of it, each less
likely than the one before.
"""

from __future__ import annotations

import zlib
from typing import Any

_VARIANTS = (str.lower, str.upper, str.title, str.swapcase, lambda s: s.strip() + ".")


def logprob(token: str) -> float:
    """A negative number in (-1, 0], the same for the same token."""
    return -round((zlib.crc32(token.encode()) % 1000) / 1000.0, 3)


def chat_entry(token: str, top: int) -> dict[str, Any]:
    """One token of chat's `logprobs.content`, with ``top`` alternatives."""
    value = logprob(token)
    return {
        "token": token,
        "logprob": value,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": alt, "logprob": lp, "bytes": list(alt.encode())}
            for alt, lp in _alternatives(token, value, top)
        ],
    }


def chat_logprobs(tokens: tuple[str, ...] | list[str], top: int) -> dict[str, Any]:
    return {"content": [chat_entry(t, top) for t in tokens], "refusal": None}


def legacy_logprobs(tokens: tuple[str, ...] | list[str], top: int, offset: int = 0) -> Any:
    """The legacy completions shape: parallel lists of tokens, logprobs, top maps, offsets."""
    offsets, at = [], offset
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": list(tokens),
        "token_logprobs": [logprob(t) for t in tokens],
        "top_logprobs": [dict(_alternatives(t, logprob(t), top)) for t in tokens],
        "text_offset": offsets,
    }


def _alternatives(token: str, value: float, top: int) -> list[tuple[str, float]]:
    seen = [token]
    for variant in _VARIANTS:
        if len(seen) >= top:
            break
        alt = variant(token)
        if alt not in seen:
            seen.append(alt)
    while len(seen) < top:
        seen.append(token + "_" * len(seen))
    return [(alt, round(value - i, 3)) for i, alt in enumerate(seen[:top])]
