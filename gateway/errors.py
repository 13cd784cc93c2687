"""One error type, rendered in OpenAI's error shape.

    GatewayError (status, type, code, param)
     ├── InvalidRequest          400 invalid_request_error
     ├── AuthenticationFailed    401 invalid_api_key
     ├── PermissionDenied        403
     ├── NotFound                404 (model_not_found, not_found)
     ├── UpstreamError           502 upstream failures the client can retry
     ├── UpstreamTimeout         504
     ├── UpstreamPassthrough     the upstream's own 4xx, body passed through
     ├── ServiceUnavailable      503 (the gateway's own database is unreachable)
     ├── RateLimited             429 a window is full (retry after it) or a budget is spent
     ├── RequestTimeout          408 the client was too slow sending its request
     └── ClientGone              499, recorded only: the client left before its answer

``message`` is what the client is told; ``detail`` (when set) is what the record and the log
keep besides: a backend's address, a library's own words, which never go to the client.

Every error says whether retrying can help: the OpenAI SDKs retry 408/409/429/5xx unless
``x-should-retry: false`` is present, so a 4xx that will never succeed says so explicitly.
"""

from __future__ import annotations

import json
from typing import Any


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.extra_headers = dict(headers or {})
        #: for the record and the log only, never the client (see the module docstring)
        self.detail: str | None = None

    @property
    def recorded(self) -> str:
        """What the exchange record says about the error: the message and its detail."""
        return f"{self.message} ({self.detail})" if self.detail else self.message

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if not self.retryable:
            headers["x-should-retry"] = "false"
        return headers


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    retryable = False


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    retryable = False


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"
    retryable = False


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"
    retryable = False


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"
    retryable = False


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class RateLimited(GatewayError):
    """A limit's window is full (retryable: ``retry-after`` says when), or a budget is spent
    until its window ends (``retryable=False``: the SDKs must not retry)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, code=code, headers=headers)
        self.retryable = retryable


class RequestTimeout(GatewayError):
    """The client did not send its request (headers or body) in time."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class ClientGone(GatewayError):
    """The client disconnected before its answer was ready (never rendered: nobody listens)."""

    status = 499
    type = "client_error"
    code = "client_disconnected"


class UpstreamPassthrough(GatewayError):
    """An upstream 4xx: the client sent something the backend refused; its body goes back."""

    type = "upstream_error"

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(f"upstream answered {status}", code="upstream_client_error")
        self.status = status
        self.raw = body
        self.retryable = status in (408, 409, 429)
        self.extra_headers = headers

    def body(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return parsed
        return super().body()

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()


class PolicyViolation(GatewayError):
    """A rule blocked the exchange: a policy outcome, never worth retrying."""

    status = 400
    type = "invalid_request_error"
    code = "policy_violation"
    retryable = False

    def __init__(self, rule: str, why: str, stage: str) -> None:
        super().__init__(f"Blocked by the deployment's policy (rule '{rule}', {stage}): {why}")
        self.rule = rule
        self.why = why

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["rule"] = self.rule
        body["error"]["why"] = self.why
        return body


class PolicyUnavailable(ServiceUnavailable):
    """The context has no policy that can serve, or a check failed closed: the same request
    would meet the same policy, so a retry cannot help."""

    code = "policy_unavailable"
    retryable = False
