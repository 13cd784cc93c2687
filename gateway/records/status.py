"""How an exchange ended."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """How an exchange ended (docs/api.md, "Records", says when each applies)."""

    OK = "ok"
    REJECTED = "rejected"  # authentication, validation, the context's limits: a 4xx
    BLOCKED = "blocked"  # a policy rule refused it, as an error or as a refusal answer
    UPSTREAM_FILTERED = "upstream_filtered"  # the backend's own filter ended an answer
    UPSTREAM_ERROR = "upstream_error"
    INCOMPLETE = "incomplete"
    CLIENT_DISCONNECTED = "client_disconnected"
    GATEWAY_ERROR = "gateway_error"  # a fault of the gateway itself, answered with a 500
