"""The prediction log's one write path: a request appends its rows to this process's segment (see
`segments`) in one write(); a thread seals the segment at `batch_size` rows or after `interval` seconds,
stores its rows in one transaction (`insert_sql`), deletes it, and ships orphans too; a failure is retried."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import chain, repeat
from pathlib import Path
from typing import Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .schema import LOG_COLUMNS, UTCDateTime, json_text, predictions
from .segments import Segment, SegmentLog, claim_orphans

log = logging.getLogger(__name__)
ROWS_PER_STATEMENT = 1_000  # 9,000 parameters: under SQLite's limit (32,766), few statements per batch
JSON_COLUMNS = {str(c.name) for c in predictions.columns if isinstance(c.type, sa.JSON)}


def insert_sql(dialect: sa.engine.Dialect, rows: int) -> str:
    """INSERT into `predictions` (columns and key from the table), a stored key left as it is. SQLite:
    `rows` rows of VALUES (it parses a row's JSON once per column read). PostgreSQL: one JSON array,
    taken apart by its JSON functions in half the time of VALUES there (measured)."""
    if dialect.name == "sqlite":
        source = "VALUES " + ", ".join([f"({', '.join('?' * len(LOG_COLUMNS))})"] * rows)
    else:
        utc = " || '+00'"  # the segments' times are UTC
        fields = [f"r -> '{c.name}'" if c.name in JSON_COLUMNS else f"CAST(r ->> '{c.name}'{utc if isinstance(c.type, UTCDateTime) else ''}"
                  f" AS {c.type.compile(dialect=dialect)})" for c in predictions.columns]  # fmt: skip
        source = f"SELECT {', '.join(fields)} FROM json_array_elements(CAST(%s AS JSON)) AS r"
    key = ", ".join(c.name for c in predictions.primary_key.columns)
    return f"INSERT INTO predictions ({', '.join(LOG_COLUMNS)}) {source} ON CONFLICT ({key}) DO NOTHING"


class ShadowModel(Protocol):  # the challenger, which scores the same rows off the request path

    version: str

    def score_rows(self, rows: list[dict]) -> Sequence[float]: ...


@dataclass(frozen=True)
class WriterStats:
    pending: int
    written: int
    failed_writes: int
    last_error: str | None
    last_write_at: float | None


class LogWriter:
    def __init__(self, engine: Engine, folder: Path, *, sync: str, batch_size: int, interval: float):
        self.engine, self.folder, self.batch_size, self.interval = engine, folder, batch_size, interval
        self.segments = SegmentLog(folder, sync)
        self._shadows: dict[str, ShadowModel] = {}  # challengers by version, as the requests named them
        self._sealed: list[Segment] = []  # oldest first
        self._ship_lock, self._thread = threading.Lock(), None
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._written, self._failed, self._last_error, self._last_write_at = 0, 0, None, None

    def append(self, rows: Sequence[dict], shadow: ShadowModel | None = None) -> None:
        """The request path: `rows` are in the segment when this returns; `shadow` scores them later."""
        if shadow is not None:
            self._shadows[shadow.version] = shadow
            for row in rows:
                row["shadow_version"] = shadow.version
        line = orjson.dumps(rows, option=orjson.OPT_APPEND_NEWLINE)  # one call: no Python per row
        if self.segments.append(line, [rows]) >= self.batch_size:
            self._wake.set()

    def flush(self) -> int:  # ships every row appended so far, and every orphan; returns the rows shipped
        with self._ship_lock:
            if (sealed := self.segments.seal()) is not None:
                self._sealed.append(sealed)
            self._sealed += claim_orphans(self.folder)
            shipped = 0
            while self._sealed:
                try:
                    shipped += self._ship(self._sealed[0])
                except Exception as err:
                    self._failed, self._last_error = self._failed + 1, f"{type(err).__name__}: {err}"[:500]
                    self._sealed = [replace(s, requests=None) for s in self._sealed]  # retried from files: no RAM held
                    log.exception("shipping %s to the prediction store failed; kept", self._sealed[0].path.name)
                    raise
                self._written += self._sealed[0].rows
                self._sealed.pop(0).discard()
                self._last_error, self._last_write_at = None, time.time()
            return shipped

    def _ship(self, segment: Segment) -> int:
        """A segment in one transaction: sealed at `batch_size` rows or each interval, it is a batch."""
        if segment.requests is None:  # an orphan's; this process's are in memory, not parsed again (holding the GIL)
            data = segment.path.read_bytes()
            data = data[: data.rfind(b"\n") + 1]  # not a line torn by a crash: its request was never answered
            segment.rows = data.count(b'{"prediction_id":')  # an orphan's are counted only now
            segment.requests = orjson.loads(b"[" + b",".join(data.splitlines()) + b"]")
        self.store(segment.requests)
        return segment.rows

    def store(self, requests: list[list[dict]]) -> None:
        """Store requests' rows in one transaction, ids stored already left as they are. A request
        the database refuses (a caller's bug) is dropped, logged, rather than hold back the log."""
        rows = [row for request in requests for row in request]
        self._score_shadows(rows)
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name != "sqlite":
                    conn.exec_driver_sql(insert_sql(self.engine.dialect, len(rows)), (json_text(rows),))
                    return
                for start in range(0, len(rows), ROWS_PER_STATEMENT):  # in C loops, column by column: less GIL held
                    chunk = rows[start : start + ROWS_PER_STATEMENT]
                    columns = [map(json_text, map(dict.get, chunk, repeat(name))) if name in JSON_COLUMNS
                               else map(dict.get, chunk, repeat(name)) for name in LOG_COLUMNS]  # fmt: skip
                    conn.exec_driver_sql(insert_sql(conn.dialect, len(chunk)), tuple(chain.from_iterable(zip(*columns))))
        except (sa.exc.IntegrityError, sa.exc.DataError):
            if len(requests) == 1:
                log.exception("a request refused by the prediction store, dropped: %s", json_text(requests[0])[:300])
                return
            for request in requests:
                self.store([request])

    def _score_shadows(self, rows: list[dict]) -> None:
        """The rows a challenger is to score, scored (all of its rows in one call); a row whose
        challenger is not here (a replay after a restart) or fails is stored without."""
        waiting: dict[str, list[dict]] = {}
        for row in rows if any(map(dict.get, rows, repeat("shadow_version"))) else ():  # a loop only where needed
            if row.get("shadow_version") is not None and row.get("shadow_score") is None:
                waiting.setdefault(row["shadow_version"], []).append(row)
        for version, scored in waiting.items():
            try:
                scores = self._shadows[version].score_rows([row["features"] for row in scored])
            except Exception:  # a replay's challenger is not loaded here (KeyError): no shadow score either
                log.exception("shadow scoring by version %s failed; storing the predictions without", version)
                scores = [None] * len(scored)
            for row, score in zip(scored, scores, strict=True):
                row["shadow_version"], row["shadow_score"] = (None, None) if score is None else (version, float(score))

    def _run(self) -> None:
        # Not niced: a niced thread holding the GIL when the kernel sets it aside stalls every request
        # (one-row throughput with logging on: 5,009 req/s niced, 6,178-6,263 not; benchmarks/serving.py).
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            with contextlib.suppress(Exception):  # logged by `flush`; retried an interval later
                self.flush()

    def start(self) -> None:
        """Ship the orphans of processes that died (a replay), then keep shipping in a thread."""
        with contextlib.suppress(Exception):  # logged; a database down at start must not stop serving
            self.flush()
        self._thread = threading.Thread(target=self._run, name="prediction-log-shipper", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and ship what is left (what fails stays on the disk for the next start)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        if not self.segments.current.rows:  # else it waits for the next start
            self.segments.current.discard()

    def stats(self) -> WriterStats:
        pending = self.segments.current.rows + sum(segment.rows for segment in self._sealed if segment.rows > 0)
        return WriterStats(pending, self._written, self._failed, self._last_error, self._last_write_at)
