"""The spool: where records wait, on local disk, while the database cannot take them.

``spool.jsonl`` in ``recording.spill_dir`` is append-only, one entry a line. Each append is
handed to the operating system at once (a killed process loses none of it) and fsync'd in
batches, every ``recording.fsync_seconds`` by the recorder's keeper (what a power cut or kernel
crash can lose). A write that fails half-way (a full disk) is cut back off, so the file never
holds a torn line before a good one. For replay the active file is *sealed*: renamed to
``spool-<time>.jsonl``, replayed in name order (the order the records were spooled) and deleted
once in the database; it is sealed too once it holds ``SEAL_BYTES``, so no file grows without
bound and a replay reads it in batches (``read_batches``).

The slow calls (fsync, the quarantine's write and fsync, reading a file back) run on a worker
thread, never on the event loop: a slow disk delays the records, not the requests.

A record the database refuses on its own while it takes the others is *quarantined*
(``quarantine-<day>.jsonl``, the reason on each line): kept, counted, importable with
``gateway exchanges import-spill``, and never blocking the rest. When even the spool cannot be
written, the records go to the log as JSON lines after ``LOG_MARKER``, which
``gateway exchanges import-spill --from-log`` reads back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import BinaryIO

from gateway.records.entries import Entry, read_entries

log = logging.getLogger("gateway.recorder")

ACTIVE = "spool.jsonl"
LOG_MARKER = "SITUATE-UNRECORDED "
#: the active file is sealed (set aside for replay, a new one started) at this size
SEAL_BYTES = 64 * 1024 * 1024


def _write_all(handle: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError("nothing written")
        view = view[written:]


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._handle: BinaryIO | None = None
        self._dirty = False
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

    async def sync(self) -> None:
        """fsync what was appended since the last one, on a worker thread (on a descriptor of
        its own: the loop may append, or seal and close the file, meanwhile; what it appends
        then is synced the next time)."""
        if self._handle is None or not self._dirty:
            return
        try:
            fd = os.dup(self._handle.fileno())
        except OSError as exc:
            log.error("the spool could not be fsync'd: %s", exc)
            return
        self._dirty = False
        try:
            await asyncio.to_thread(_fsync_and_close, fd)
        except OSError as exc:
            self._dirty = True
            log.error("the spool could not be fsync'd: %s", exc)

    def _close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    async def close(self) -> None:
        await self.sync()
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

    async def seal(self) -> Path | None:
        """Close the active file and set it aside for replay (new records start a new one)."""
        if self.active_size() == 0:
            return None
        await self.sync()
        sealed = self.folder / f"spool-{time.time_ns():020d}.jsonl"
        try:
            self.active.rename(sealed)
        except OSError as exc:
            log.error("the spool could not be sealed for replay: %s", exc)
            return None
        # No await since the rename: new records start a new file. What was appended during
        # the fsync went with the sealed one: it is fsync'd again, and so is the rename.
        handle, dirty = self._handle, self._dirty
        self._handle, self._dirty = None, False
        try:
            await asyncio.to_thread(_seal_durably, handle, dirty, self.folder)
        except OSError as exc:
            log.error("the sealed spool could not be fsync'd: %s", exc)
        return sealed

    def remove(self, path: Path) -> None:
        """A sealed file, replayed."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("a replayed spool file could not be removed: %s", exc)

    async def quarantine(self, entry: Entry, why: str) -> bool:
        """Keep a record the database refuses on its own (written and fsync'd on a worker
        thread); False when even that failed."""
        path = self.folder / f"quarantine-{time.strftime('%Y%m%d')}.jsonl"
        data = json.loads(entry.to_json())
        data["quarantined"] = why
        try:
            await asyncio.to_thread(_append_synced, path, json.dumps(data) + "\n")
        except OSError as exc:
            log.error("quarantining %s failed (%s)", entry.id, exc)
            return False
        return True


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal_durably(handle: BinaryIO | None, dirty: bool, folder: Path) -> None:
    """fsync what the sealed file got since the last fsync, close it, and fsync the folder
    (the rename)."""
    if handle is not None:
        try:
            if dirty:
                os.fsync(handle.fileno())
        finally:
            handle.close()
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_synced(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


async def read_batches(path: Path, size: int) -> AsyncGenerator[list[Entry], None]:
    """A spool file's entries in batches of ``size``, read and parsed on a worker thread, so a
    big file is neither read on the event loop nor held in memory whole."""
    handle = await asyncio.to_thread(path.open, "r", encoding="utf-8", errors="replace")
    try:
        ended = False
        while not ended:
            entries, ended = await asyncio.to_thread(read_entries, handle, size)
            if entries:
                yield entries
    finally:
        handle.close()


def to_log(entries: Sequence[Entry], why: str) -> None:
    """The last resort: each record as a JSON line in the log, which ``import-spill
    --from-log`` reads back."""
    for entry in entries:
        log.error("unrecorded exchange (%s): %s%s", why, LOG_MARKER, entry.to_json())


def read_log(path: Path) -> list[Entry]:
    """The records a log holds after ``LOG_MARKER``, in order: in text lines, or in the
    ``message`` of JSON lines (``logging.format: json``)."""
    entries = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = _message(raw)
        at = line.find(LOG_MARKER)
        if at < 0:
            continue
        try:
            entries.append(Entry.from_json(line[at + len(LOG_MARKER) :]))
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def _message(line: str) -> str:
    """A JSON log line's message (the line itself when it is not one)."""
    if not line.startswith("{") or LOG_MARKER not in line:
        return line
    try:
        found = json.loads(line)
    except ValueError:
        return line
    message = found.get("message") if isinstance(found, dict) else None
    return message if isinstance(message, str) else line
