"""Stores the prediction log's batches from a process of its own, so that the interpreter answering
requests does not spend its time on the log.

A writer thread in a serving worker shares the GIL with the requests: while it converts and
inserts a batch, a request waits for the interpreter. Through this
process, a serving worker only encodes the rows the requests queued and passes them on (see
`log_chunks`): `send` writes a batch into the pipe, or what the pipe has room for (the rest
follows at the next call), and returns; `answers` later collects, without waiting, which batches were stored and which
failed (the caller keeps every batch sent until then, so that a failed one can be sent again).

Protocol on the child's stdin and stdout: each message is an 8-byte little-endian length and that
many bytes. The first message to the child is the database URL (not an argument: `ps` would show
a password); then each message is a batch of chunks (see `log_chunks`), stored in one transaction
and answered, in order, with an empty message once committed or with the error's text. The child
exits when its stdin closes: the parent closed it, or died.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from typing import BinaryIO, Generic, TypeVar

from .inserter import PredictionInserter
from .schema import create_store_engine

log = logging.getLogger(__name__)

HEADER = struct.Struct("<Q")
PIPE_BYTES = 1 << 20  # the default ceiling for a pipe an unprivileged process enlarges
# Bytes waiting for room in the pipe beyond which `send` waits for the child (about a hundred
# batches of 500 rows): a log far behind holds back the requests rather than grow without bound.
MAX_OUTGOING = 16 << 20


Token = TypeVar("Token")


class InsertError(RuntimeError):
    """The insert process did not store a batch; the message says why."""


def _send(stream: BinaryIO, payload: bytes) -> None:
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: BinaryIO) -> bytes:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("the other end closed the pipe")
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError(f"the pipe closed after {len(payload)} of {size} bytes")
    return payload


class InsertProcess(Generic[Token]):
    """The parent's side. `send(batch, token)` hands a batch on; `answers()` returns the outcomes
    of the batches answered since the last call.

    The child starts with `start()` or on the first batch, and again on the next batch after it
    died: the batches it had not answered then come back from `answers()` as failed (a batch is
    reported failed that way only, never also by `send`, so that it is queued again once)."""

    def __init__(self, url: str, stop_timeout: float = 30.0):
        self.url = url
        self.stop_timeout = stop_timeout
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._unanswered: deque[Token] = deque()  # sent, in order; the child answers in that order
        self._answered: list[tuple[Token, str | None]] = []  # (token, why it failed, or None), oldest first
        self._replies = bytearray()  # the child's answers read so far, the last one maybe partial
        self._outgoing = bytearray()  # messages sent that the pipe had no room for yet

    def start(self) -> None:
        with self._lock:
            self._running_child()

    def send(self, batch: bytes, token: Token) -> None:
        """Hand a batch of chunks (see `log_chunks`) to the child, to store in one transaction;
        `token` comes back from `answers()`. Waits only while more than MAX_OUTGOING bytes find
        no room in the pipe."""
        with self._lock:
            self._running_child()
            self._outgoing += HEADER.pack(len(batch))
            self._outgoing += batch
            self._unanswered.append(token)
            self._push(until=MAX_OUTGOING)

    def _push(self, until: int) -> None:
        """Write what is waiting into the pipe, as much as it takes, then wait for room while more
        than `until` bytes are left. A child found gone is lost, with what it had not answered."""
        fd = self._child.stdin.fileno()
        try:
            while self._outgoing:
                try:
                    del self._outgoing[: os.write(fd, self._outgoing)]
                except BlockingIOError:
                    if len(self._outgoing) <= until:
                        return
                    select.select([], [fd], [])
        except OSError as err:
            self._lose_child(f"the insert process stopped ({type(err).__name__}: {err})")

    @property
    def unanswered(self) -> list[Token]:
        """The batches sent and not answered yet, oldest first."""
        with self._lock:
            return list(self._unanswered)

    def answers(self, wait: bool = False) -> list[tuple[Token, str | None]]:
        """The batches answered since the last call, oldest first: (token, None) if stored, or
        (token, why) if not, or sent to a child that died. With `wait`, every batch sent so far."""
        with self._lock:
            if self._child is not None:
                self._push(until=0 if wait else MAX_OUTGOING)
            while self._unanswered and self._child is not None:
                if not wait and not select.select([self._child.stdout], [], [], 0)[0]:
                    break
                data = os.read(self._child.stdout.fileno(), 1 << 16)
                if not data:
                    self._lose_child("the insert process stopped before answering")
                    break
                self._replies += data
                self._take_answers()
            answered, self._answered = self._answered, []
            return answered

    def _take_answers(self) -> None:
        while len(self._replies) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._replies)
            if len(self._replies) < HEADER.size + size:
                return
            error = self._replies[HEADER.size : HEADER.size + size].decode()
            del self._replies[: HEADER.size + size]
            self._answered.append((self._unanswered.popleft(), error or None))

    def _lose_child(self, why: str) -> None:
        """The child is gone (or going): what it had not answered failed."""
        child = self._child
        if child is not None and child.poll() is not None:  # it exited: its last answers may be in the pipe
            with contextlib.suppress(OSError):
                while data := os.read(child.stdout.fileno(), 1 << 16):
                    self._replies += data
            self._take_answers()
        self._stop(kill=True)
        self._answered += [(token, why) for token in self._unanswered]
        self._unanswered.clear()
        self._replies.clear()
        self._outgoing.clear()

    def _running_child(self) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        if self._child is not None:
            self._lose_child("the insert process stopped")
        # A process group of its own: a Ctrl-C meant for the server must not stop it before the
        # server's last flush; it ends when its stdin closes instead. The server's session, not a
        # new one: Linux's autogroup scheduling gives each session an equal share of the CPU, so in
        # a session of its own this process would weigh as much as all the workers together,
        # whatever its priority, and take their cores while requests wait.
        command = [sys.executable, "-c", f"from {__name__} import main; main()"]
        self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0)
        # A batch (hundreds of KB) in one write rather than in 64 KiB turns of the two processes.
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux
            with contextlib.suppress(OSError):  # over the system's limit for this user: the default size
                fcntl.fcntl(self._child.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        _send(self._child.stdin, self.url.encode())
        os.set_blocking(self._child.stdin.fileno(), False)  # a full pipe must not hold up a request (see `send`)
        return self._child

    def close(self) -> None:
        """Let the child finish and exit (it has answered every batch sent, so nothing is left)."""
        with self._lock:
            self._stop(kill=False)

    def _stop(self, kill: bool) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            if kill:
                child.kill()
            else:
                child.stdin.close()
            child.wait(timeout=self.stop_timeout)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()
        finally:
            child.stdout.close()
            if not child.stdin.closed:
                child.stdin.close()


def main() -> None:
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed goes to stderr, never into a reply
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Below the workers: when it wakes to store a batch, a worker with a request to answer gets the
    # core first. Not SCHED_IDLE: the workers hand it batches without waiting for it, so under
    # sustained full load, with no idle CPU at all, it would fall behind without bound. At nice 10
    # it keeps up, and when far behind (see MAX_OUTGOING) a worker's next batch waits for it.
    os.nice(10)
    logging.basicConfig(level=logging.INFO, format="insert process %(process)d: %(levelname)s %(message)s")
    engine = create_store_engine(_receive(requests).decode())
    # What was made so far lives as long as the process: out of the collector's sight, the
    # collections that each batch's thousands of new objects set off have only those to look at.
    gc.collect()
    gc.freeze()
    # A batch in one go, in as few statements as SQLite takes: yielding the core between slices of
    # it makes both this process and the workers spend more CPU per row, each coming back to caches
    # the other has filled. The price is that a request arriving meanwhile waits for the batch,
    # which shows in the one-row p99 (docs/benchmarks.md).
    inserter = PredictionInserter(engine, pause=None)
    try:
        while True:
            try:
                payload = _receive(requests)
            except EOFError:
                return
            try:
                inserter.insert(payload)
                error = b""
            except Exception as err:  # the parent keeps the rows and retries; it needs to know why
                log.exception("storing a batch of predictions failed")
                error = f"{type(err).__name__}: {err}"[:500].encode()
            _send(replies, error)
    finally:
        engine.dispose()
