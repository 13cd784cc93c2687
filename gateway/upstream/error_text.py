"""A backend's error body that is not OpenAI's error shape, made fit to show a client.

Servers and the proxies in front of them answer errors as plain text, HTML pages, other JSON
shapes, or nothing at all. The client should still learn why: the body's text is extracted
(tags dropped), anything that looks like a credential is replaced by ``[redacted]``, and the
result is cut to a bounded length that says how much was left out.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

MAX_TEXT = 400  # characters of the backend's text passed on; the rest is counted, not shown
REDACTED = "[redacted]"

_SECRETS = (
    # OpenAI/Anthropic-style keys, and other vendors' prefixed tokens.
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\b(?:gh[pousr]|hf|xox[abprs]|glpat)[_-][A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),  # a JWT
)
# A credential's name, then its value: the name stays, so the text still says what was wrong.
_NAMED = re.compile(
    r"(?i)\b((?:bearer|basic)\s+|(?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|"
    r"client[_-]?secret|password|passwd|pwd)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&<>]{4,})"
)
_INVISIBLE = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>|<!--.*?-->")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_TEXT_KEYS = ("error", "detail", "message")


def scrub_secrets(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(REDACTED, text)
    return _NAMED.sub(lambda m: m.group(1) + REDACTED, text)


def readable(body: bytes, content_type: str) -> str:
    """The body as one line of text: an HTML page's words, a JSON document's message."""
    text = body.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        text = html.unescape(_TAG.sub(" ", _INVISIBLE.sub(" ", text)))
    else:
        text = _json_text(text)
    return _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in text)).strip()


def _json_text(text: str) -> str:
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict):
        for key in _TEXT_KEYS:
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()} … ({len(text) - limit} more characters)"


def shown(body: bytes, content_type: str) -> str:
    """What of a backend's error body may be shown: readable, scrubbed, bounded."""
    return bounded(scrub_secrets(readable(body, content_type)))


def is_openai_error(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


def client_error_body(backend: str, status: int, body: bytes, content_type: str) -> bytes:
    """OpenAI's error shape around a backend's 4xx body that was not in it."""
    text = shown(body, content_type)
    refused = f"Backend '{backend}' refused the request (HTTP {status})"
    message = f"{refused}: {text}" if text else f"{refused} with an empty body."
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "upstream_client_error",
    }
    return json.dumps({"error": error}, ensure_ascii=False).encode()
