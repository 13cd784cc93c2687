"""The sections of the service around the request path: recording, callers' keys, review,
the HTTP server, the detectors' worker pool."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.config.base import Strict as _Strict


class RecordingConfig(_Strict):
    batch_size: int = Field(500, ge=1)
    max_queue: int = Field(100_000, ge=1, description="beyond this, records spill to disk")
    retries: int = Field(3, ge=0)
    spill_dir: Path = Path("data/spill")
    fsync_seconds: float = Field(
        0.2,
        gt=0,
        le=60,
        description="how often the spool is fsync'd: what a SIGKILL can lose while the "
        "database is down",
    )
    replay_seconds: float = Field(
        5.0, gt=0, description="how often a spool is replayed into the database once it is back"
    )
    on_spool_failure: Literal["refuse", "serve"] = Field(
        "refuse",
        description="when neither the database nor the spool can take records: refuse new "
        "traffic (503), or serve unrecorded (recorded in the log and counted)",
    )


class AuthConfig(_Strict):
    cache_seconds: float = Field(5.0, ge=0, description="how long a key lookup is trusted")
    stale_seconds: float = Field(
        300.0,
        ge=0,
        description="while the database is unreachable, a key looked up within this long "
        "keeps serving: the bound on how late a revocation takes effect during an outage",
    )


class ReviewPageConfig(_Strict):
    session_hours: float = Field(
        12.0, gt=0, le=720, description="how long a sign-in to the reviewers' page lasts"
    )


class ReviewConfig(_Strict):
    claim_lease_minutes: float = Field(
        15.0, gt=0, le=24 * 60, description="how long a claimed item stays its reviewer's"
    )


class ServerConfig(_Strict):
    """The HTTP server's own bounds on slow or stuck clients, and its shutdown."""

    header_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send its request line and headers"
    )
    body_timeout: float = Field(30.0, gt=0, description="seconds a client has to send its body")
    shutdown_grace: float = Field(
        30.0, ge=0, description="on SIGTERM: seconds in-flight requests and streams may finish"
    )


class DetectorsConfig(_Strict):
    """The worker pool learned detectors (``classifier`` rules, semantic scope) run in."""

    workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="threads that run models at once (default: the CPU count, at most 4); "
        "env GATEWAY_DETECTOR_WORKERS",
    )
    queue: int = Field(64, ge=0, description="texts that may wait for a worker; beyond: on_error")
    cache_entries: int = Field(
        8192, ge=0, description="scores kept, keyed by the text's SHA-256 digest"
    )
