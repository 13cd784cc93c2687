"""Signed checkpoints written out as files: ``<dir>/<chain>/<size>.checkpoint`` and
``latest.checkpoint``, each written whole or not at all (a temporary file, fsynced, renamed,
the folder fsynced), so a reader or a backup never sees half a note.

A write the disk refuses (full, read-only, permissions) is kept and tried again; nothing is
lost meanwhile, since the database's audit_checkpoints row holds the same note.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("gateway.audit.checkpoints")

LATEST = "latest.checkpoint"
SUFFIX = ".checkpoint"
_NUMBERED = re.compile(r"^(0|[1-9][0-9]*)\.checkpoint$")


class CheckpointFiles:
    """One chain's checkpoint folder, and the notes not yet written to it."""

    def __init__(self, root: Path, chain_id: str) -> None:
        self.folder = root / chain_id
        #: size -> note, waiting for the disk
        self._waiting: dict[int, str] = {}
        self._failing = False

    @property
    def waiting(self) -> int:
        """How many notes are waiting for a write the disk refused."""
        return len(self._waiting)

    def present(self) -> set[int]:
        """The sizes whose checkpoint file is in the folder."""
        try:
            names = os.listdir(self.folder)
        except OSError:  # none there, or unreadable: each is written (again)
            return set()
        return {int(match[1]) for name in names if (match := _NUMBERED.match(name))}

    def add(self, size: int, note: str) -> None:
        """A note to write (at the next ``flush``)."""
        self._waiting[size] = note

    def flush(self) -> bool:
        """Write every waiting note, oldest first, and the newest as latest too; a refused
        write is logged and kept for the next flush. True when nothing is left waiting.
        Blocking: call it off the event loop."""
        waiting = dict(self._waiting)
        if not waiting:
            return True
        newest = max(waiting)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for size in sorted(waiting):
                _write_atomic(self.folder / f"{size}{SUFFIX}", waiting[size])
                if size == newest:
                    _write_atomic(self.folder / LATEST, waiting[size])
                del self._waiting[size]
        except OSError as exc:
            self._refused(exc)
            return False
        if self._failing:
            log.warning("checkpoint files are written again in %s", self.folder)
            self._failing = False
        return True

    def _refused(self, exc: OSError) -> None:
        # Said loudly once, then quietly at each retry: the retries come every few seconds.
        level = logging.DEBUG if self._failing else logging.ERROR
        log.log(level, "cannot write checkpoint files in %s (%s); %d kept to retry, the "
                "database holds them", self.folder, exc.strerror or exc, len(self._waiting))
        self._failing = True


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: a temporary file beside it, fsynced, renamed over."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """A new name in ``folder`` made durable: the folder fsynced."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def missing(files: CheckpointFiles, sizes: Iterable[int]) -> list[int]:
    """The sizes among ``sizes`` that have no file yet."""
    present = files.present()
    return sorted(size for size in sizes if size not in present)
