"""The local log in front of the SQL store: a row is appended to a segment file, one JSON object a
line, before its answer goes out. A write() is in the kernel's page cache once it returns, so the
row survives a SIGKILL of its process; only a power cut loses what was not synced (the sync
policy). A process holds an exclusive flock on each segment it has not shipped; the kernel drops
it when the process dies, however it dies, and a segment nobody holds is an orphan that any
process may claim, ship and delete (shipping twice stores once: the prediction id is the key)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".seg"
SYNC_POLICIES = ("none", "batch", "always")


@dataclass
class Segment:
    path: Path
    fd: int  # holds the segment's lock until `discard`
    rows: int  # -1: an orphan's, not counted yet

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):  # an orphan that another process shipped too
            self.path.unlink()
        os.close(self.fd)


class SegmentLog:
    """The segment this process appends to; `seal` hands it over for shipping and opens the next."""

    def __init__(self, folder: Path, sync: str):
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync policy {sync!r}: one of {', '.join(SYNC_POLICIES)}")
        self.folder, self.sync = folder, sync
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # an append or a seal, never both
        self._open = self._new_segment()

    def _new_segment(self) -> Segment:
        opening = self.folder / f"{os.getpid()}-{uuid.uuid4().hex}.new"
        fd = os.open(opening, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(opening, path := opening.with_suffix(SUFFIX))  # a segment once locked: never an orphan
        return Segment(path, fd, 0)

    @property
    def rows(self) -> int:
        return self._open.rows

    def append(self, lines: bytes, rows: int) -> int:
        """Append complete lines holding `rows` rows; returns the rows in the open segment now."""
        with self._lock:
            segment, view = self._open, memoryview(lines)
            while view:
                view = view[os.write(segment.fd, view) :]
            if self.sync == "always":
                os.fdatasync(segment.fd)
            segment.rows += rows
            return segment.rows

    def seal(self) -> Segment | None:
        """The open segment, to ship (None if empty); appends go to a new one from now on."""
        with self._lock:
            if not (sealed := self._open).rows:
                return None
            self._open = self._new_segment()
        if self.sync == "batch":
            os.fdatasync(sealed.fd)
        return sealed

    def close(self) -> None:
        """Delete the open segment, if it is empty (else it waits for the next start)."""
        with self._lock:
            if not self._open.rows:
                self._open.discard()


def claim_orphans(folder: Path) -> list[Segment]:
    """Segments whose process died before shipping them, now locked by this one."""
    claimed = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # shipped by its owner meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            claimed.append(Segment(path, fd, -1))
        except BlockingIOError:  # its process is alive
            os.close(fd)
    return claimed


def find_line(folder: Path, needle: bytes) -> bytes | None:
    """The first complete line holding `needle` in a segment not shipped yet, of any process."""
    for path in folder.glob(f"*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if (at := data.find(needle)) >= 0 and (end := data.find(b"\n", at)) >= 0:
                return data[data.rfind(b"\n", 0, at) + 1 : end]
    return None
