"""Writes queued items in batches on a background thread, so the request path only appends to a queue.

An item stands for one or more rows (one request's predictions, say), counted when it is queued. Items
are written in transactions of about `batch_size` rows, as soon as that many are queued or
`interval` seconds after the last write, whichever comes first. A failed write keeps its items and
retries at the next interval; `close()` writes whatever is left, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


@dataclass(frozen=True)
class WriterStats:
    pending: int
    written: int
    failed_writes: int
    last_error: str | None
    last_write_at: float | None


class BatchWriter(Generic[Item]):
    def __init__(
        self,
        write: Callable[[list[Item]], None],
        *,
        batch_size: int = 500,
        interval: float = 1.0,
        prepare: Callable[[list[Item]], list[Item]] | None = None,
        name: str = "batch-writer",
    ):
        """`write` stores items in one transaction; `prepare` (optional) returns them enriched,
        off the request path."""
        self._write = write
        self._prepare = prepare
        self.batch_size = batch_size
        self.interval = interval
        self._name = name
        # (rows, item), oldest first, failed ones put back in front. A plain tuple, and no record of
        # which rows are queued: this runs on every request, and each object it makes costs there.
        self._queue: deque[tuple[int, Item]] = deque()
        self._queued_rows = 0
        self._in_flight_rows = 0
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
    def submit(self, item: Item, rows: int = 1) -> None:
        """Queue an item that holds `rows` rows."""
        queued = (rows, item)
        with self._buffer_lock:
            closed = self._closed
            if not closed:
                self._queue.append(queued)
                self._queued_rows += rows
                full = self._queued_rows >= self.batch_size
        if closed:
            # Nobody is left to flush it, so write it now rather than drop it.
            with self._write_lock:
                self._write_batch([queued])
        elif full:
            self._wake.set()

    # -- writing --------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything submitted so far, about `batch_size` rows per transaction; return the
        row count.

        Items submitted while it runs wait for the next flush: under steady traffic, chasing them
        would write a transaction of a few rows after another and keep the interpreter busy."""
        written = 0
        with self._write_lock:
            with self._buffer_lock:
                left = len(self._queue)
            while left:
                with self._buffer_lock:
                    batch, rows = [], 0
                    while left and rows < self.batch_size:
                        queued = self._queue.popleft()
                        batch.append(queued)
                        rows += queued[0]
                        left -= 1
                    self._queued_rows -= rows
                    self._in_flight_rows = rows
                try:
                    written += self._write_batch(batch)
                finally:
                    with self._buffer_lock:
                        self._in_flight_rows = 0
        return written

    def _write_batch(self, batch: list[tuple[int, Item]]) -> int:
        items = [item for _, item in batch]
        rows = sum(rows for rows, _ in batch)
        if self._prepare is not None:
            try:
                items = self._prepare(items)
            except Exception:  # enrichment is optional; the rows themselves must still be stored
                log.exception("%s: preparing a batch of %d rows failed; writing them as they are", self._name, rows)
        try:
            self._write(items)
        except Exception as err:
            self._failed_writes += 1
            self._last_error = f"{type(err).__name__}: {err}"[:500]
            with self._buffer_lock:
                # Back in front, keeping arrival order, for the next attempt.
                self._queue.extendleft(reversed(batch))
                self._queued_rows += rows
            log.exception("%s: writing %d rows failed; they stay queued", self._name, rows)
            raise
        self._written += rows
        self._last_error = None
        self._last_write_at = time.time()
        return rows

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # Logged in _write_batch; back off one interval instead of spinning on a dead database.
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
        # An item submitted between the last flush and _closed being set would otherwise wait forever.
        self.flush()

    def stats(self) -> WriterStats:
        with self._buffer_lock:
            pending = self._queued_rows + self._in_flight_rows
        return WriterStats(pending, self._written, self._failed_writes, self._last_error, self._last_write_at)
