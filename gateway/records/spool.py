"""The spool: where records wait, on local disk, while the database cannot take them.

``spool.jsonl`` in ``recording.spill_dir`` is append-only, one entry a line. Each append is
handed to the operating system at once (a killed process loses none of it) and fsync'd in
batches, at most every ``recording.fsync_seconds`` (what a power cut or kernel crash can lose).
A write that fails half-way (a full disk) is cut back off, so the file never holds a torn line
before a good one. For replay the active file is *sealed*: renamed to ``spool-<time>.jsonl``,
replayed in name order (the order the records were spooled) and deleted once in the database.

A record the database refuses on its own while it takes the others is *quarantined*
(``quarantine-<day>.jsonl``, the reason on each line): kept, counted, importable with
``gateway exchanges import-spill``, and never blocking the rest. When even the spool cannot be
written, the records go to the log as JSON lines after ``LOG_MARKER``, which
``gateway exchanges import-spill --from-log`` reads back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from gateway.records.entries import Entry

log = logging.getLogger("gateway.recorder")

ACTIVE = "spool.jsonl"
LOG_MARKER = "SITUATE-UNRECORDED "


def _write_all(handle: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError("nothing written")
        view = view[written:]


class Spool:
    def __init__(self, folder: Path, fsync_seconds: float) -> None:
        self.folder = folder
        self._fsync_seconds = fsync_seconds
        self._handle: BinaryIO | None = None
        self._dirty = False
        self._synced_at = time.monotonic()
        #: why the last write failed (None: the spool takes records)
        self.broken: str | None = None

    @property
    def active(self) -> Path:
        return self.folder / ACTIVE

    def append(self, entries: Sequence[Entry]) -> bool:
        """Append the entries; False (and ``broken`` says why) when the disk refused them."""
        data = "".join(e.to_json() + "\n" for e in entries).encode("utf-8")
        try:
            self._append(data)
        except OSError as exc:
            self.broken = f"{type(exc).__name__}: {exc}"[:300]
            self._close()
            return False
        self.broken = None
        if time.monotonic() - self._synced_at >= self._fsync_seconds:
            self.sync()
        return True

    def _append(self, data: bytes) -> None:
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._handle = self.active.open("ab", buffering=0)
        handle = self._handle
        size = os.fstat(handle.fileno()).st_size
        try:
            _write_all(handle, data)
        except OSError:
            with contextlib.suppress(OSError):  # no torn line before the lines to come
                os.ftruncate(handle.fileno(), size)
            raise
        self._dirty = True

    def probe(self) -> bool:
        """Whether the spool takes writes again (a blank line, which readers skip)."""
        try:
            self._append(b"\n")
        except OSError as exc:
            self.broken = f"{type(exc).__name__}: {exc}"[:300]
            self._close()
            return False
        self.broken = None
        return True

    def sync(self) -> None:
        """fsync what was appended since the last one."""
        if self._handle is not None and self._dirty:
            try:
                os.fsync(self._handle.fileno())
            except OSError as exc:
                log.error("the spool could not be fsync'd: %s", exc)
                return
            self._dirty = False
        self._synced_at = time.monotonic()

    def _close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    def close(self) -> None:
        self.sync()
        self._close()

    def active_size(self) -> int:
        try:
            return self.active.stat().st_size
        except OSError:
            return 0

    def sealed(self) -> list[Path]:
        """The sealed files waiting for replay, oldest first."""
        try:
            return sorted(self.folder.glob("spool-*.jsonl"))
        except OSError:
            return []

    def waiting(self) -> bool:
        """Whether any record waits in the spool."""
        return self.active_size() > 0 or bool(self.sealed())

    def seal(self) -> Path | None:
        """Close the active file and set it aside for replay (new records start a new one)."""
        if self.active_size() == 0:
            return None
        self.close()
        sealed = self.folder / f"spool-{time.time_ns():020d}.jsonl"
        try:
            self.active.rename(sealed)
        except OSError as exc:
            log.error("the spool could not be sealed for replay: %s", exc)
            return None
        return sealed

    def remove(self, path: Path) -> None:
        """A sealed file, replayed."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("a replayed spool file could not be removed: %s", exc)

    def quarantine(self, entry: Entry, why: str) -> bool:
        """Keep a record the database refuses on its own; False when even that failed."""
        path = self.folder / f"quarantine-{time.strftime('%Y%m%d')}.jsonl"
        data = json.loads(entry.to_json())
        data["quarantined"] = why
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(data) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            log.error("quarantining %s failed (%s)", entry.id, exc)
            return False
        return True


def to_log(entries: Sequence[Entry], why: str) -> None:
    """The last resort: each record as a JSON line in the log, which ``import-spill
    --from-log`` reads back."""
    for entry in entries:
        log.error("unrecorded exchange (%s): %s%s", why, LOG_MARKER, entry.to_json())


def read_log(path: Path) -> list[Entry]:
    """The records a log holds after ``LOG_MARKER``, in order."""
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        at = line.find(LOG_MARKER)
        if at < 0:
            continue
        try:
            entries.append(Entry.from_json(line[at + len(LOG_MARKER) :]))
        except (ValueError, KeyError, TypeError):
            continue
    return entries
