"""What the transport raises, as the gateway's errors, and which of them a retry can fix.

Both transports (httpx's own, and httpx over aiohttp) end up here. httpx_aiohttp maps only some
of aiohttp's exceptions to httpx's (and a server that hung up becomes a ``ConnectTimeout``);
the rest (``ClientResponseError`` for a malformed status line or an 8 KB header, a payload
error for a bad chunk size) come through raw. Each is classified by the library's own
exception, wherever it sits in the chain, so a malformed upstream is a 502, never a 500.

The client is told which backend failed (by its config name) and how, in the gateway's words;
the library's own words, which name addresses and internals, go to ``detail``: the record and
the log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx

from gateway.errors import GatewayError, UpstreamError, UpstreamPassthrough, UpstreamTimeout

UNREACHABLE = "upstream_unreachable"
CONNECTION = "upstream_connection_error"
MALFORMED = "upstream_malformed_response"
BROKEN = "upstream_stream_broken"
TIMEOUT = "upstream_timeout"
STATUS = "upstream_error"
AUTH = "upstream_auth_failed"
REFUSED_IN_STREAM = "upstream_stream_refused"

#: failures a second try may not meet (the backend's fault, or the way there)
RETRYABLE_CODES = frozenset({UNREACHABLE, CONNECTION, MALFORMED, BROKEN, TIMEOUT, STATUS})
#: how aiohttp words a body cut short by the connection closing (a payload error too)
_CUT_SHORT = ("not completed", "Not enough data")
#: a backend's own 4xx that a retry can fix
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class UpstreamStatusError(UpstreamError):
    """The backend answered with a status that is its failure (5xx, 401/403, a redirect)."""

    def __init__(self, message: str, *, code: str, upstream_status: int) -> None:
        super().__init__(message, code=code)
        self.upstream_status = upstream_status
        if code == AUTH:
            # the gateway's own credentials are wrong: no retry, by anyone, can fix that
            self.retryable = False


class StreamRefused(UpstreamError):
    """The backend answered 200, then an error event first: it refused this request inside its
    stream ("context length exceeded"), and says no server error. Another try would meet the
    same refusal, and the backend is up and answering: neither retried nor counted against its
    health (unless the event names a 408/409/429, as a backend's status would)."""

    code = REFUSED_IN_STREAM

    def __init__(self, message: str, *, status: int, said: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.said = said  # the status the event names, if any
        self.retryable = said in RETRYABLE_STATUSES
        if 400 <= status < 500:
            self.type = "invalid_request_error"


def retryable(exc: GatewayError) -> bool:
    """Whether another try (on this backend or another) may succeed."""
    if isinstance(exc, UpstreamPassthrough):
        return exc.status in RETRYABLE_STATUSES
    if isinstance(exc, StreamRefused):
        return exc.retryable
    return isinstance(exc, UpstreamError) and exc.code in RETRYABLE_CODES


def says_nothing_of_health(exc: GatewayError) -> bool:
    """A 408 or 429 (or an error event naming one): the backend is busy, not failing."""
    if isinstance(exc, UpstreamPassthrough):
        return exc.status in (408, 429)
    return isinstance(exc, StreamRefused) and exc.said in (408, 429)


def backend_failed(exc: GatewayError) -> bool:
    """Whether the failure counts against the backend's health (429 and 4xx do not)."""
    return isinstance(exc, UpstreamError) and exc.code in RETRYABLE_CODES


def upstream_status(exc: GatewayError) -> int | None:
    if isinstance(exc, UpstreamPassthrough):
        return exc.status
    if isinstance(exc, StreamRefused):
        return 200  # the stream's status: the refusal came inside it
    if isinstance(exc, UpstreamStatusError):
        return exc.upstream_status
    return None


def _library_cause(exc: BaseException) -> BaseException:
    """The innermost aiohttp exception in the chain, else the exception itself."""
    seen: BaseException | None = exc
    found = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, aiohttp.ClientError):
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


def _kind(exc: BaseException) -> tuple[str, str]:
    """(code, what happened, in the gateway's words) for a transport exception."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return UNREACHABLE, "is unreachable"
    if isinstance(exc, aiohttp.ServerTimeoutError | httpx.TimeoutException | TimeoutError):
        if isinstance(exc, httpx.ConnectTimeout):
            return UNREACHABLE, "is unreachable"
        return TIMEOUT, "timed out"
    if isinstance(exc, httpx.ConnectError):
        return UNREACHABLE, "is unreachable"
    if isinstance(exc, aiohttp.ClientPayloadError):
        if any(cut in str(exc) for cut in _CUT_SHORT):  # the connection went mid-body
            return CONNECTION, "closed the connection or failed on it"
        return BROKEN, "broke off its response (a malformed body)"
    if isinstance(exc, aiohttp.ClientResponseError):
        return MALFORMED, "sent a malformed HTTP response"
    if isinstance(exc, httpx.RemoteProtocolError) and "disconnected" not in str(exc):
        return MALFORMED, "sent a malformed HTTP response"
    return CONNECTION, "closed the connection or failed on it"


def upstream_failure(name: str, exc: BaseException) -> UpstreamError:
    """The gateway's error for a transport exception on backend ``name``."""
    cause = _library_cause(exc)
    code, what = _kind(cause)
    kind = UpstreamTimeout if code == TIMEOUT else UpstreamError
    error = kind(f"Backend '{name}' {what}.", code=code)
    error.detail = f"{type(cause).__name__}: {cause}"[:1000]
    return error


@contextlib.contextmanager
def mapped(name: str) -> Iterator[None]:
    """Any exception of either transport, as the gateway's error for backend ``name``."""
    try:
        yield
    except GatewayError:
        raise
    except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:  # OSError: TimeoutError too
        raise upstream_failure(name, exc) from exc


#: what in an error event's type or code says the backend failed (a server error)
_SERVER_WORDS = ("server", "internal", "overload", "unavailable", "timeout", "api_error")


def error_event_failure(name: str, data: str) -> UpstreamError:
    """The gateway's error for an error event that came first in backend ``name``'s stream.

    A server error (a 5xx named, or a type such as ``server_error``) is the backend's failure,
    like a 5xx: retried and counted, the backend's words in ``detail`` only. Anything else is
    its refusal of this request (``StreamRefused``), if it says so (a 4xx named, or a type or
    code): the client is told why, scrubbed and bounded, with the status the event names (a
    4xx), else 400 for an invalid request, else 502; and ``x-should-retry: false`` unless a
    retry can help. An event that names no kind at all (``{"error": "runner stopped"}``, or
    not JSON) is taken for the backend's failure: a crashing backend is retried and ejected.
    ``data`` is the event's whole text: only the text kept is bounded."""
    from gateway.upstream.error_text import bounded, scrub_secrets

    error = _error_object(data)
    said = next((v for v in (error.get("status"), error.get("code")) if _is_status(v)), None)
    kind = " ".join(str(error.get(k) or "") for k in ("type", "code")).lower()
    words = error.get("message") if isinstance(error.get("message"), str) else data
    text = bounded(scrub_secrets(" ".join(str(words).split())))
    unknown = said is None and not kind.strip()
    if unknown or (said is not None and int(said) >= 500) or any(w in kind for w in _SERVER_WORDS):
        failed = UpstreamError(f"Backend '{name}' failed: its stream began with an error event.")
        failed.code, failed.detail = STATUS, text
        return failed
    status = int(said) if said is not None and int(said) < 500 else None
    if status is None:
        status = 400 if "invalid_request" in kind else 502
    return StreamRefused(
        f"Backend '{name}' refused the request in its stream: {text}",
        status=status,
        said=None if said is None else int(said),
    )


def _error_object(data: str) -> dict[str, Any]:
    try:
        parsed: Any = json.loads(data)
    except ValueError:
        return {"message": data}
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return dict(parsed["error"])
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return {**parsed, "message": parsed["error"]}
    if isinstance(parsed, dict):
        return parsed
    return {"message": data}


def _is_status(value: Any) -> bool:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599
