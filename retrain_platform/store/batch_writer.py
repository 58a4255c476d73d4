"""Writes queued items in batches on a background thread, so the request path only appends to a queue.

An item stands for one or more rows (one request's predictions, say), counted when it is queued. Items
are written in transactions of about `batch_size` rows, as soon as that many are queued or
`interval` seconds after the last write, whichever comes first. A failed write keeps its items and
retries at the next interval; `close()` writes whatever is left, so a graceful shutdown loses nothing.

A write may also only hand its items on (to another process, say) and learn later whether they
were stored: then `settle` collects those outcomes, and a batch that failed comes back through
`put_back`. Such a write is quick, and the submitter that fills a batch can make it itself
(`write_if_full`) instead of waking the thread: a thread woken for every batch takes the GIL back
from the requests several times per batch, and each hand-over of the GIL between the two threads
is a wake-up on another core, paid for by the requests.
"""

from __future__ import annotations

import logging
import math
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
        settle: Callable[[bool], None] | None = None,
        name: str = "batch-writer",
    ):
        """`write` stores items in one transaction, or hands them on; `prepare` (optional) returns
        them enriched, off the request path. `settle(wait)`, for a write that hands items on,
        takes the outcomes of the batches handed on so far (all of them, waiting, if `wait`),
        puts the failed ones back (`put_back`) and raises if any failed, or else reports those
        stored (`stored`)."""
        self._write = write
        self._prepare = prepare
        self._settle = settle
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
        # After a failed write, requests leave the retries to the thread, which makes them one
        # interval apart: a database that is down must not be sent every batch again per request.
        self._retry_after = -math.inf

    # -- request path ---------------------------------------------------------------------------
    def submit(self, item: Item, rows: int = 1, write_if_full: bool = False) -> None:
        """Queue an item that holds `rows` rows. `write_if_full`: if that fills a batch, write it
        here rather than wake the writer thread (for a quick write that hands items on)."""
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
                self._settle_batches(wait=True)
        elif full and not (write_if_full and self._write_full_batch()):
            self._wake.set()

    def _write_full_batch(self) -> bool:
        """Write what is queued in the submitter's thread, unless another write is under way (then
        the thread takes it: a request must not wait for it). False if it was left to the thread."""
        if time.monotonic() < self._retry_after or not self._write_lock.acquire(blocking=False):
            return False
        try:
            self._write_and_settle(wait=False)
        except Exception:  # logged, and the rows are queued again; the thread retries at its interval
            pass
        finally:
            self._write_lock.release()
        return True

    # -- writing --------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything submitted so far, about `batch_size` rows per transaction, and wait
        until it is stored; return the row count.

        Items submitted while it runs wait for the next flush: under steady traffic, chasing them
        would write a transaction of a few rows after another and keep the interpreter busy."""
        with self._write_lock:
            return self._write_and_settle(wait=True)

    def _write_and_settle(self, wait: bool) -> int:
        """Write (or hand on) what is queued now, then collect the outcomes of what was handed on
        (all of them, waiting, if `wait`); the caller holds the write lock. Returns the rows written."""
        written = self._write_queued()
        self._settle_batches(wait)
        return written

    def _write_queued(self) -> int:
        """Write (or hand on) the items queued now, in batches; the caller holds the write lock."""
        written = 0
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

    def _settle_batches(self, wait: bool) -> None:
        if self._settle is not None:
            self._settle(wait)

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
            self._requeue(batch, err)
            raise
        self._written += rows
        if self._settle is None:  # stored; a batch handed on is known stored once settled (`stored`)
            self.stored()
        return rows

    def stored(self) -> None:
        """A batch was stored: the database takes writes (again)."""
        self._last_error = None
        self._last_write_at = time.time()

    def put_back(self, batch: list[tuple[int, Item]], error: BaseException) -> None:
        """A batch handed on (as `write` got it, with each item's rows) that was not stored after
        all: queued again, for the next attempt."""
        self._written -= sum(rows for rows, _ in batch)
        self._requeue(batch, error)

    def _requeue(self, batch: list[tuple[int, Item]], error: BaseException) -> None:
        rows = sum(rows for rows, _ in batch)
        self._retry_after = time.monotonic() + self.interval
        self._failed_writes += 1
        self._last_error = f"{type(error).__name__}: {error}"[:500]
        with self._buffer_lock:
            # Back in front, keeping arrival order.
            self._queue.extendleft(reversed(batch))
            self._queued_rows += rows
        log.error("%s: writing %d rows failed; they stay queued", self._name, rows, exc_info=error)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                # Without waiting for what it handed on: a later round collects that.
                with self._write_lock:
                    self._write_and_settle(wait=False)
            except Exception:
                # Logged when queued again; back off one interval instead of spinning on a dead database.
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
