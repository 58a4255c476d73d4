"""Stores batches of predictions: multi-row INSERTs of the rows `decode_batch` gives, without
SQLAlchemy's per-row execution machinery.

Used by the store's writer, either in the serving process (a thread beside the requests) or in a
process of its own (`insert_process`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from itertools import chain

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError

from .log_chunks import ROW_COLUMNS, decode_batch
from .schema import features_mapping, predictions

log = logging.getLogger(__name__)

# SQLite takes at most 32,766 bound values per statement (3.32 and later).
SQLITE_ROWS_PER_STATEMENT = 32_766 // len(ROW_COLUMNS)
# Rows inserted between two pauses: a request waits at most this long for the interpreter (a
# writer thread), not a whole batch.
ROWS_PER_SLICE = 100


def yield_interpreter() -> None:
    time.sleep(0)  # releases the GIL: a waiting request runs now, not after a switch interval


class PredictionInserter:
    def __init__(self, engine: Engine, pause: Callable[[], None] | None = yield_interpreter):
        """`pause` runs every ROWS_PER_SLICE rows inserted: beside requests, it lets them take the
        interpreter. None: a batch in as few statements as SQLite takes."""
        self.engine = engine
        self._pause = pause
        dialect = engine.dialect
        # The rows go to the driver as decoded: their time is the one value the driver does not
        # take as it is (text on SQLite), converted here; the features are JSON text
        # already, and the other values are strings and numbers.
        bind = predictions.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._time_values = (lambda values: list(map(bind, values))) if bind else None
        self._insert_sql = f"INSERT INTO predictions ({', '.join(ROW_COLUMNS)}) VALUES %s"
        self._driver_errors = (dialect.dbapi.IntegrityError, dialect.dbapi.DataError)

    def insert(self, batch: bytes) -> None:
        """Store a batch of chunks (see `log_chunks`) in one transaction."""
        try:
            rows = decode_batch(batch, self._time_values)
            with self.engine.begin() as conn:
                self._bulk_insert(conn, rows)
        except (IntegrityError, DataError, *self._driver_errors):
            # A retried batch whose first commit did land, or one row the database refuses: store
            # the rest one by one rather than block the log behind it. A dead database (an
            # OperationalError) still raises, and the writer retries the whole batch later. Decoded
            # again: SQLAlchemy converts the times itself.
            rows = [dict(zip(ROW_COLUMNS, row, strict=True)) for row in decode_batch(batch)]
            for row in rows:
                row["features"] = features_mapping(row["features"])
            self._insert_one_by_one(rows)

    def _bulk_insert(self, conn, values: list[tuple]) -> None:
        if self.engine.dialect.name == "postgresql":
            from psycopg2.extras import execute_values  # the driver this store installs for PostgreSQL

            with conn.connection.cursor() as cursor:
                execute_values(cursor, self._insert_sql % "%s", values, page_size=len(values))
            return
        # Multi-row statements: executemany binds and steps row by row; beside requests, each of its
        # steps would also take the GIL back.
        placeholders = f"({', '.join('?' * len(ROW_COLUMNS))})"
        per_statement = SQLITE_ROWS_PER_STATEMENT if self._pause is None else ROWS_PER_SLICE
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(values), per_statement):
                if start and self._pause is not None:
                    self._pause()
                chunk = values[start : start + per_statement]
                cursor.execute(self._insert_sql % ", ".join([placeholders] * len(chunk)), list(chain(*chunk)))
        finally:
            cursor.close()

    def _insert_one_by_one(self, rows: list[dict]) -> None:
        for row in rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(predictions.insert(), row)
            except IntegrityError:
                if not self._exists(row["prediction_id"]):
                    log.error("prediction %s refused by the database; dropped", row["prediction_id"], exc_info=True)
            except DataError:
                log.error("prediction %s refused by the database; dropped", row["prediction_id"], exc_info=True)

    def _exists(self, prediction_id: str) -> bool:
        query = sa.select(predictions.c.prediction_id).where(predictions.c.prediction_id == prediction_id)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None
