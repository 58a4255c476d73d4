"""Writes rows in batches on a background thread, so the request path only appends to a buffer.

Rows are written in transactions of up to `batch_size` rows, as soon as that many are queued or
`interval` seconds after the last write, whichever comes first. A failed write keeps its rows and retries at the
next interval; `close()` writes whatever is left, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Rows = list[dict]


@dataclass(frozen=True)
class WriterStats:
    pending: int
    written: int
    failed_writes: int
    last_error: str | None
    last_write_at: float | None


class BatchWriter:
    def __init__(
        self,
        write: Callable[[Rows], None],
        *,
        key: str,
        batch_size: int = 500,
        interval: float = 1.0,
        prepare: Callable[[Rows], None] | None = None,
        name: str = "batch-writer",
    ):
        """`write` stores rows in one transaction; `prepare` (optional) enriches a batch first,
        off the request path; `key` names the field that identifies a row."""
        self._write = write
        self._prepare = prepare
        self._key = key
        self.batch_size = batch_size
        self.interval = interval
        self._name = name
        # Rows by key, in arrival order: the pending check for a row is one dict lookup.
        self._buffer: dict[str, dict] = {}
        self._in_flight: dict[str, dict] = {}
        self._buffer_lock = threading.Lock()
        # Held for a whole write: whoever holds it next sees everything written before.
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._written = 0
        self._failed_writes = 0
        self._last_error: str | None = None
        self._last_write_at: float | None = None

    # -- request path ---------------------------------------------------------------------------
    def submit(self, row: dict) -> None:
        self.submit_many([row])

    def submit_many(self, rows: Rows) -> None:
        full = False
        with self._buffer_lock:
            if not self._closed:
                for row in rows:
                    self._buffer[row[self._key]] = row
                full = len(self._buffer) >= self.batch_size
                rows = []
        if rows:
            # Closed: nobody is left to flush them, so write them now rather than drop them.
            with self._write_lock:
                self._flush_rows({row[self._key]: row for row in rows})
        elif full:
            self._wake.set()

    def is_pending(self, key: str) -> bool:
        with self._buffer_lock:
            return key in self._buffer or key in self._in_flight

    # -- writing --------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything submitted so far, `batch_size` rows per transaction; return the count.

        Rows submitted while it runs wait for the next flush: under steady traffic, chasing them
        would write a transaction of a few rows after another and keep the interpreter busy."""
        written = 0
        with self._write_lock:
            with self._buffer_lock:
                left = len(self._buffer)  # the oldest rows come first, failed ones included
            while True:
                with self._buffer_lock:
                    keys = list(itertools.islice(self._buffer, min(self.batch_size, left)))
                    left -= len(keys)
                    batch = {key: self._buffer.pop(key) for key in keys}
                    self._in_flight = batch
                try:
                    if not batch:
                        return written
                    written += self._flush_rows(batch)
                finally:
                    with self._buffer_lock:
                        self._in_flight = {}

    def _flush_rows(self, batch: dict[str, dict]) -> int:
        if not batch:
            return 0
        rows = list(batch.values())
        if self._prepare is not None:
            try:
                self._prepare(rows)
            except Exception:  # enrichment is optional; the rows themselves must still be stored
                log.exception("%s: preparing a batch of %d rows failed; writing them as they are", self._name, len(rows))
        try:
            self._write(rows)
        except Exception as err:
            self._failed_writes += 1
            self._last_error = f"{type(err).__name__}: {err}"[:500]
            with self._buffer_lock:
                # Put them back in front, keeping arrival order, for the next attempt.
                self._buffer = {**batch, **self._buffer}
            log.exception("%s: writing %d rows failed; they stay queued", self._name, len(rows))
            raise
        self._written += len(rows)
        self._last_error = None
        self._last_write_at = time.time()
        return len(rows)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # Logged in _flush_rows; back off one interval instead of spinning on a dead database.
                self._stopping.wait(self.interval)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def close(self, retry_for: float = 10.0) -> None:
        """Stop the thread and write what is left, retrying a failing database for `retry_for` s."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        deadline = time.monotonic() + retry_for
        while True:
            try:
                self.flush()
                break
            except Exception:
                if time.monotonic() >= deadline:
                    log.error("%s: %d rows could not be written before shutdown", self._name, self.stats().pending)
                    raise
                time.sleep(0.5)
        with self._buffer_lock:
            self._closed = True
        # A row submitted between the last flush and _closed being set would otherwise wait forever.
        self.flush()

    def stats(self) -> WriterStats:
        with self._buffer_lock:
            pending = len(self._buffer) + len(self._in_flight)
        return WriterStats(pending, self._written, self._failed_writes, self._last_error, self._last_write_at)
