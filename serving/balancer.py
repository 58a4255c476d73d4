"""Spreads keep-alive connections evenly over uvicorn's worker processes.

Uvicorn's workers share one listening socket, and a connection stays with the worker that accepted
it. The first worker to wake accepts every connection waiting, so a client that opens a few
keep-alive connections at once (a gateway, a load generator) often puts them all on one worker
while the other idles, and the server runs at half its throughput for as long as they stay open
(test_serving_http shows it: without this module, four connections rarely end up two by two).

Each worker counts the connections it served in the last second and publishes the count in a small
table shared by the workers of one uvicorn supervisor (a file mapped into memory, named after the
supervisor's pid). A worker holding at least two connections more than the least busy worker
answers one request with `Connection: close`; the client reconnects, and the worker idling in
`accept` takes the new connection. A server run as a single process (no supervisor) balances nothing.

A connection is known by its client address and port. Behind a proxy that uvicorn trusts with
X-Forwarded-For (by default only one on the same host), the port is lost and the balancer counts
the proxy's clients instead of its connections: roughly even still, not exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import multiprocessing
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SLOT = struct.Struct("<qqd")  # worker pid, connections served in the last WINDOW seconds, when published
SLOTS = 64
WINDOW = 1.0  # a connection counts as active this long after its last request
PERIOD = 0.25  # how often a busy worker publishes its count and compares; at most one close per period


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerTable:
    """The shared table: one slot per worker process, claimed and freed under a file lock."""

    def __init__(self, path: Path, pid: int | None = None):
        self.path = path
        self.pid = pid or os.getpid()
        with _locked(path) as fd:
            if os.fstat(fd).st_size < SLOT.size * SLOTS:
                os.ftruncate(fd, SLOT.size * SLOTS)
            self._map = mmap.mmap(fd, SLOT.size * SLOTS)  # stays valid once the file is closed
            self.offset = self._claim()

    def _claim(self) -> int:
        for index in range(SLOTS):
            pid, _, _ = SLOT.unpack_from(self._map, index * SLOT.size)
            if pid in (0, self.pid) or not _alive(pid):
                SLOT.pack_into(self._map, index * SLOT.size, self.pid, 0, time.time())
                return index * SLOT.size
        raise RuntimeError(f"{self.path}: all {SLOTS} worker slots are taken")

    def count(self) -> int:
        """What this worker published last."""
        return SLOT.unpack_from(self._map, self.offset)[1]

    def publish(self, connections: int) -> None:
        SLOT.pack_into(self._map, self.offset, self.pid, connections, time.time())

    def peers(self) -> list[int]:
        """The other live workers' connection counts; one that served nothing for WINDOW seconds
        has none (an idle worker publishes nothing)."""
        recent = time.time() - WINDOW
        counts = []
        for index in range(SLOTS):
            pid, connections, published = SLOT.unpack_from(self._map, index * SLOT.size)
            if pid and pid != self.pid and _alive(pid):
                counts.append(connections if published >= recent else 0)
        return counts

    def release(self) -> None:
        """Free this worker's slot; the last worker out removes the file."""
        with _locked(self.path):
            SLOT.pack_into(self._map, self.offset, 0, 0, 0.0)
            if not any(SLOT.unpack_from(self._map, i * SLOT.size)[0] for i in range(SLOTS)):
                self.path.unlink(missing_ok=True)
        self._map.close()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    """The table's file, open and locked. A worker that opened it just as the last one out removed
    it would otherwise claim a slot in a file nobody else sees (uvicorn's reload stops the old
    workers while it starts the new ones): it opens the path again until the file it locked is
    the one there."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield fd
                return
        finally:
            # Unlocked explicitly: a mapping of the file holds a duplicate of this descriptor,
            # and the lock would last as long as the mapping.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def supervisor_table() -> WorkerTable | None:
    """This worker's slot in its supervisor's table; None when uvicorn runs a single process."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None:
        return None
    folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return WorkerTable(folder / f"retrain-serving-{supervisor.pid}.workers")


class ConnectionBalancer:
    """ASGI middleware: counts this worker's connections and closes one when it holds too many."""

    def __init__(self, app):
        self.app = app
        self._table: WorkerTable | None = None
        self._seen: dict[tuple, float] = {}  # client (host, port) -> when it last sent a request
        self._next_check = 0.0
        self.closed = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self._table is not None and scope.get("client"):
            now = time.monotonic()
            client = scope["client"]
            self._seen[client] = now
            if now >= self._next_check and self._should_close(client, now):
                await self.app(scope, receive, _closing(send))
                return
        elif scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan(send))
            return
        await self.app(scope, receive, send)

    def _should_close(self, client: tuple, now: float) -> bool:
        self._next_check = now + PERIOD
        for known, last in list(self._seen.items()):
            if now - last > WINDOW:
                del self._seen[known]
        mine = len(self._seen)
        peers = self._table.peers()
        close = bool(peers) and mine - min(peers) >= 2
        if close:
            del self._seen[client]
            self.closed += 1
        self._table.publish(len(self._seen))
        return close

    def _lifespan(self, send):
        async def wrapped(message):
            if message["type"] == "lifespan.startup.complete":
                try:
                    self._table = supervisor_table()
                except (OSError, RuntimeError) as err:  # balancing is an optimisation; serve without it
                    log.warning("connection balancing off: %s", err)
            elif message["type"] == "lifespan.shutdown.complete" and self._table is not None:
                self._table.release()
                self._table = None
            await send(message)

        return wrapped


def _closing(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    return wrapped
