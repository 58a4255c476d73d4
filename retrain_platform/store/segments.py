"""The local log in front of the SQL store: a request's rows are appended to a segment file, a line
of JSON (an array of row objects), before its answer goes out. A write() is in the kernel's page
cache once it returns: the rows survive a SIGKILL of their process, and only a power cut loses
what was not synced (the sync policy). A process holds an exclusive flock on each segment it has
not shipped; the kernel drops it when the process dies, however it dies, and a segment nobody
holds is an orphan any process may claim, ship and delete (twice shipped, once stored: the id is the key)."""

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
    rows: int  # -1: an orphan's, counted when shipped
    requests: list[list[dict]] | None = None  # as appended (JSON values, as in the file); an orphan's: read to ship

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
        self.current = self._new_segment()  # the segment appended to

    def _new_segment(self) -> Segment:
        opening = self.folder / f"{os.getpid()}-{uuid.uuid4().hex}.new"
        fd = os.open(opening, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(opening, path := opening.with_suffix(SUFFIX))  # a segment once locked: never an orphan
        return Segment(path, fd, 0, [])

    def append(self, lines: bytes, requests: list[list[dict]]) -> int:
        """Append complete lines, those of `requests`; returns the rows in the open segment now."""
        with self._lock:
            segment, written = self.current, os.write(self.current.fd, lines)
            while written < len(lines):  # a short write (rare): the rest, not a second copy of the whole
                written += os.write(segment.fd, lines[written:])
            if self.sync == "always":
                os.fdatasync(segment.fd)
            segment.requests += requests
            segment.rows += sum(map(len, requests))
            return segment.rows

    def seal(self) -> Segment | None:
        """The open segment, to ship (None if empty); appends go to a new one from now on."""
        with self._lock:
            if not (sealed := self.current).rows:
                return None
            self.current = self._new_segment()
        if self.sync == "batch":
            os.fdatasync(sealed.fd)
        return sealed


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


def find_line(folder: Path, prediction_id: str) -> bytes | None:
    """The line of a prediction in a segment not shipped yet, of any process (None: not there)."""
    needle = f'"prediction_id":"{prediction_id}"'.encode()  # as orjson writes an id (no escapes)
    for path in folder.glob(f"*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if (at := data.find(needle)) >= 0 and (end := data.find(b"\n", at)) >= 0:
                return data[data.rfind(b"\n", 0, at) + 1 : end]
    return None
