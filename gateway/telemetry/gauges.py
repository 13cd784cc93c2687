"""The gauges: backend health, the review backlog, the recorder, the audit chain.

Each gauge's callback reads memory only (the SDK calls it from the scrape's or the OTLP
reader's thread). What needs the database or the disk (the backlog, the chains, the last
checkpoints, the spool's files) is read by ``GaugeRefresher.run`` every
``telemetry.gauges_seconds`` (15 s by default), a task under the supervisor; ages are computed
at the callback from the times it stored, so they grow between two refreshes as they should.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select

from gateway.clock import now
from gateway.db.models import AuditChain, AuditCheckpoint, ReviewItem
from gateway.db.session import Sessions
from gateway.telemetry.metrics import Metrics
from gateway.upstream.health import HealthBoard, State

log = logging.getLogger("gateway.metrics")

Reading = tuple[float, Mapping[str, str]]


class _Stats(Protocol):
    spilled: int
    replayed: int
    replay_skipped: int


class _Spool(Protocol):
    folder: Path


class Recording(Protocol):
    """What the gauges read of the recorder (``gateway.records.recorder.ExchangeRecorder``)."""

    @property
    def pending(self) -> int: ...

    @property
    def stats(self) -> _Stats: ...

    @property
    def spool(self) -> _Spool: ...


@dataclass(slots=True)
class Readings:
    """The latest values read from the database and the disk, and what the writer last took."""

    #: (context, queue) -> (open items, the oldest one's creation)
    backlog: dict[tuple[str, str], tuple[int, datetime]] = field(default_factory=dict)
    #: chain id -> entries
    chains: dict[str, int] = field(default_factory=dict)
    #: chain id -> when its last checkpoint was made
    checkpoints: dict[str, datetime] = field(default_factory=dict)
    spool_bytes: int = 0


def spool_bytes(folder: Path) -> int:
    """The spool's files' sizes (the active one and those sealed for replay)."""
    total = 0
    try:
        paths = list(folder.glob("spool*.jsonl"))
    except OSError:
        return 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


class GaugeRefresher:
    def __init__(self, sessions: Sessions, recording: Recording, readings: Readings) -> None:
        self._sessions = sessions
        self._recording = recording
        self.readings = readings

    async def run(self, every: float) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(every)

    async def refresh(self) -> None:
        """Read everything once; a failing read keeps the last values (and is logged)."""
        readings = self.readings
        readings.spool_bytes = await asyncio.to_thread(spool_bytes, self._recording.spool.folder)
        try:
            async with self._sessions() as session:
                backlog = await session.execute(
                    select(
                        ReviewItem.context,
                        ReviewItem.queue,
                        func.count(),
                        func.min(ReviewItem.created_at),
                    )
                    .where(ReviewItem.state != "done")
                    .group_by(ReviewItem.context, ReviewItem.queue)
                )
                chains = await session.execute(select(AuditChain.chain_id, AuditChain.size))
                checkpoints = await session.execute(
                    select(AuditCheckpoint.chain_id, func.max(AuditCheckpoint.created_at)).group_by(
                        AuditCheckpoint.chain_id
                    )
                )
                readings.backlog = {(c, q): (n, at) for c, q, n, at in backlog}
                readings.chains = {chain: size for chain, size in chains}
                readings.checkpoints = {chain: at for chain, at in checkpoints}
        except Exception as exc:  # the database away: the gauges keep their last values
            log.warning("the metrics' database gauges could not be read: %s", exc)


def _age(moment: datetime) -> float:
    return max(0.0, (now() - moment).total_seconds())


def register_gauges(
    metrics: Metrics, readings: Readings, recording: Recording, health: HealthBoard
) -> None:
    """The observable instruments, each reading memory only."""

    def backends() -> Iterable[Reading]:
        return [
            (0.0 if health.state(n) is State.EJECTED else 1.0, {"gateway.backend": n})
            for n in health.names
        ]

    def ejections() -> Iterable[Reading]:
        return [(float(health.ejected_total(n)), {"gateway.backend": n}) for n in health.names]

    def backlog() -> Iterable[Reading]:
        return [
            (float(n), {"gateway.context": c, "gateway.review.queue": q})
            for (c, q), (n, _) in readings.backlog.items()
        ]

    def oldest() -> Iterable[Reading]:
        return [
            (_age(at), {"gateway.context": c, "gateway.review.queue": q})
            for (c, q), (_, at) in readings.backlog.items()
        ]

    up = "1: the backend takes requests; 0: ejected"
    metrics.gauge("gateway.backend.up", "{backend}", up, backends)
    metrics.counter("gateway.backend.ejections", "{ejection}", "Backends ejected", ejections)
    metrics.gauge("gateway.review.backlog", "{item}", "Review items not done", backlog)
    metrics.gauge("gateway.review.oldest_age", "s", "The oldest open review item's age", oldest)
    _recorder_gauges(metrics, readings, recording)
    _audit_gauges(metrics, readings)


def _recorder_gauges(metrics: Metrics, readings: Readings, recording: Recording) -> None:
    def queue() -> Iterable[Reading]:
        return [(float(recording.pending), {})]

    def lag() -> Iterable[Reading]:
        last = metrics.last_taken_end
        if recording.pending == 0 or last is None:
            return [(0.0, {})]
        return [(max(0.0, time.time() - last), {})]

    def spool_size() -> Iterable[Reading]:
        return [(float(readings.spool_bytes), {})]

    def spool_records() -> Iterable[Reading]:
        stats = recording.stats
        return [(float(max(0, stats.spilled - stats.replayed - stats.replay_skipped)), {})]

    metrics.gauge("gateway.recorder.queue", "{record}", "Records waiting for the writer", queue)
    metrics.gauge("gateway.recorder.lag", "s", "How far behind the writer is", lag)
    metrics.gauge("gateway.recorder.spool.size", "By", "The spool's files", spool_size)
    metrics.gauge(
        "gateway.recorder.spool.records", "{record}", "Records spooled, not replayed", spool_records
    )


def _audit_gauges(metrics: Metrics, readings: Readings) -> None:
    def length() -> Iterable[Reading]:
        return [(float(size), {"gateway.audit.chain": c}) for c, size in readings.chains.items()]

    def checkpoint_age() -> Iterable[Reading]:
        return [(_age(at), {"gateway.audit.chain": c}) for c, at in readings.checkpoints.items()]

    metrics.gauge("gateway.audit.chain.length", "{entry}", "Entries in each chain", length)
    metrics.gauge(
        "gateway.audit.checkpoint.age", "s", "Since each chain's last checkpoint", checkpoint_age
    )


def gauge_refresher(
    metrics: Metrics, sessions: Sessions, recording: Recording, health: HealthBoard
) -> GaugeRefresher:
    """The gauges registered on ``metrics`` and the task that keeps their readings fresh."""
    readings = Readings()
    register_gauges(metrics, readings, recording, health)
    return GaugeRefresher(sessions, recording, readings)
