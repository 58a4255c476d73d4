"""Stores the prediction log's batches from a process of its own, so that the interpreter answering
requests does not spend its time on the log.

A writer thread in a serving worker shares the GIL with the requests: converting and inserting a
1,000-row batch there held the interpreter for ~9 ms that a request then waited for. Through this
process, the thread only passes on the chunks the requests encoded (see `log_chunks`) and waits,
without the GIL, for the answer.

Protocol on the child's stdin and stdout: each message is an 8-byte little-endian length and that
many bytes. The first message to the child is the database URL (not an argument: `ps` would show
a password); then each message is a batch of chunks (see `log_chunks`), stored in one transaction
and answered with an empty message once committed or with the error's text. The child exits when
its stdin closes: the parent closed it, or died.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
from typing import BinaryIO

from .inserter import PredictionInserter
from .schema import create_store_engine

log = logging.getLogger(__name__)

HEADER = struct.Struct("<Q")
PIPE_BYTES = 1 << 20  # the default ceiling for a pipe an unprivileged process enlarges


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


class InsertProcess:
    """The parent's side: `insert(batch)` returns once the child committed them, or raises InsertError.

    The child starts on the first batch, and again on the next batch after it died (a batch it was
    handling then fails, and the writer keeps its rows for the next attempt)."""

    def __init__(self, url: str, stop_timeout: float = 30.0):
        self.url = url
        self.stop_timeout = stop_timeout
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def insert(self, batch: bytes) -> None:
        """Store a batch of chunks (see `log_chunks`) in one transaction."""
        with self._lock:
            child = self._running_child()
            try:
                _send(child.stdin, batch)
                error = _receive(child.stdout)
            except (OSError, EOFError) as err:
                self._stop(kill=True)
                raise InsertError(
                    f"the insert process stopped ({type(err).__name__}: {err}); the next batch starts another"
                ) from err
        if error:
            raise InsertError(error.decode())

    def _running_child(self) -> subprocess.Popen:
        if self._child is not None and self._child.poll() is None:
            return self._child
        self._stop(kill=True)
        # A process group of its own: a Ctrl-C meant for the server must not stop it before the
        # server's last flush; it ends when its stdin closes instead. The server's session, not a
        # new one: Linux's autogroup scheduling gives each session an equal share of the CPU, so in
        # a session of its own this process weighed as much as all the workers together, whatever
        # its priority, and took their cores while requests waited (one-row p99 went up by half).
        command = [sys.executable, "-c", f"from {__name__} import main; main()"]
        self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0)
        # A batch (hundreds of KB) in one write rather than in 64 KiB turns of the two processes.
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux
            with contextlib.suppress(OSError):  # over the system's limit for this user: the default size
                fcntl.fcntl(self._child.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        _send(self._child.stdin, self.url.encode())
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
    # Only CPU that nothing else wants: a request should never wait for the log. At nice 5 this
    # process still took a core from the workers whenever it woke; under SCHED_IDLE it stores the
    # rows in the gaps between requests, and in A/B runs of short bursts (backlog counted) logging
    # cost less and one-row p99 was lower. Under sustained full load it gets no such gaps: past
    # SPILL_BATCHES queued the server stores batches itself (see PredictionStore).
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a sandbox that refuses it: the lowest nice value instead
        os.nice(19)
    logging.basicConfig(level=logging.INFO, format="insert process %(process)d: %(levelname)s %(message)s")
    engine = create_store_engine(_receive(requests).decode())
    # What was made so far lives as long as the process: out of the collector's sight, the
    # collections that each batch's thousands of new objects set off have only those to look at.
    gc.collect()
    gc.freeze()
    # A batch is thousands of microseconds of work on a core the requests share: between slices of
    # it, the scheduler may give the core back to a request waiting for it.
    inserter = PredictionInserter(engine, pause=os.sched_yield)
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
