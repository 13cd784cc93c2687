"""The spool's replay: what waited on disk, written to the database once it answers.

Sealed files are replayed oldest first, each read in batches on a worker thread
(``spool.read_batches``), each batch inserted idempotently (``insert_new``: a record already
in the database is skipped, and not chained again). A batch the database refuses while it
answers is written record by record; one refused for its own sake (an integrity or data
error) is quarantined. A failure that is the database's (a statement timeout, a lost
connection: ``entries.transient``) stops the replay and keeps the file, whose next replay skips
what was written of it. Records go to the database again once the spool is empty.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.chain import AuditChain
from gateway.db.session import Sessions
from gateway.records.entries import Entry, describe, insert_new, reachable, transient
from gateway.records.spool import Spool, read_batches

log = logging.getLogger("gateway.recorder")

Quarantine = Callable[[Entry, str], Awaitable[None]]
#: told of the records a replay found in the database, written now or before
Written = Callable[[list[Entry]], None]

#: replays in a row a record may fail alone, with an error called the database's, while the
#: database answers, before it is quarantined: a failure misread as transient (or a trigger's
#: lasting serialization failure) never stops the spool for good
STUCK_REPLAYS = 5


@dataclass(slots=True)
class RecorderStats:
    written: int = 0
    #: records that went to the spool (the database down or slow, or the queue full)
    spilled: int = 0
    failed_batches: int = 0
    #: the database is unreachable (or timed out a write): records go to the spool until a
    #: replay writes it
    failing: bool = False
    last_error: str | None = None
    #: records whose rows could not be built at all (each logged: its id, endpoint and error)
    unbuildable: int = 0
    #: records the database refused on their own, kept in a quarantine file
    quarantined: int = 0
    #: spooled records written to the database by the replay, and those it found there
    replayed: int = 0
    replay_skipped: int = 0
    #: records only the log holds (neither the database nor the spool took them)
    logged: int = 0
    #: requests served while nothing could record them (``on_spool_failure: serve``)
    served_unrecorded: int = 0


class Replayer:
    def __init__(
        self,
        sessions: Sessions,
        spool: Spool,
        stats: RecorderStats,
        batch_size: int,
        quarantine: Quarantine,
        chain: AuditChain | None = None,
        *,
        written: Written | None = None,
    ) -> None:
        self._sessions = sessions
        self._written = written
        self._chain = chain
        self._spool = spool
        self._stats = stats
        self._batch_size = batch_size
        self._quarantine = quarantine
        #: consecutive replays each chunk (by its first record) and record failed transiently
        #: while the database answered
        self._stuck: dict[tuple[str, str], int] = {}

    async def replay(self) -> None:
        """Write what the spool holds, in order, skipping records already in the database;
        once it is empty, records go to the database again."""
        spool, stats = self._spool, self._stats
        if spool.broken is not None:
            spool.probe()
        if not stats.failing and not spool.waiting():
            return
        if not await reachable(self._sessions):
            stats.failing = True
            return
        while True:
            files = spool.sealed()
            if files:
                if not await self._replay_files(files):
                    return
                continue
            if spool.active_size() == 0:  # no await since: nothing can slip in
                if stats.failing:
                    log.warning("the database is back: exchange records go to it again")
                stats.failing = False
                return
            if await spool.seal() is None:  # the disk refused the rename: the next round
                return

    async def _replay_files(self, files: list[Path]) -> bool:
        for path in files:
            if not await self._replay_file(path):  # kept, to be replayed again
                if not await reachable(self._sessions):
                    self._stats.failing = True
                return False
        return True

    async def _replay_file(self, path: Path) -> bool:
        """Replay one sealed file, read in batches; False when the database failed it for its
        own sake (the file stays: what is written of it is skipped the next time)."""
        total = 0
        async with contextlib.aclosing(read_batches(path, self._batch_size)) as batches:
            async for chunk in batches:
                if not await self._replay_chunk(chunk):
                    return False
                total += len(chunk)
        self._spool.remove(path)
        log.warning("replayed %d spooled exchange records from %s", total, path.name)
        return True

    async def _replay_chunk(self, chunk: list[Entry]) -> bool:
        try:
            inserted, skipped = await insert_new(self._sessions, chunk, self._chain)
        except Exception as exc:
            self._stats.last_error = describe(exc)
            if not await reachable(self._sessions):
                return False
            if transient(exc) and not self._stuck_again("chunk", chunk[0].id):
                return False
            alone = await self._replay_alone(chunk)
            if alone is None:
                return False
            inserted, skipped = alone
        else:
            self._tell(chunk)
        self._stuck.pop(("chunk", chunk[0].id), None)
        self._stats.replayed += inserted
        self._stats.replay_skipped += skipped
        self._stats.written += inserted
        return True

    async def _replay_alone(self, chunk: list[Entry]) -> tuple[int, int] | None:
        """Each entry on its own: one refused for its own sake is quarantined; None when the
        database failed for its own (the rest of the file waits for the next replay)."""
        inserted = skipped = 0
        for entry in chunk:
            try:
                done, seen = await insert_new(self._sessions, [entry], self._chain)
            except Exception as exc:
                why = self._stats.last_error = describe(exc)
                if transient(exc):
                    if not await reachable(self._sessions):
                        return None
                    if not self._stuck_again("entry", entry.id):
                        return None
                    why = f"{why} (alone, in {STUCK_REPLAYS} replays in a row)"
                self._stuck.pop(("entry", entry.id), None)
                await self._quarantine(entry, why)
                continue
            self._stuck.pop(("entry", entry.id), None)
            self._tell([entry])
            inserted, skipped = inserted + done, skipped + seen
        return inserted, skipped

    def _tell(self, entries: list[Entry]) -> None:
        if self._written is not None:
            self._written(entries)

    def _stuck_again(self, kind: str, key: str) -> bool:
        """Count one more transient failure in a row; True once there were STUCK_REPLAYS."""
        count = self._stuck.get((kind, key), 0) + 1
        self._stuck[(kind, key)] = count
        return count >= STUCK_REPLAYS
