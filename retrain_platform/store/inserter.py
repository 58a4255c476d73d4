"""Stores batches of predictions: multi-row INSERTs with SQLAlchemy's bind processors (JSON, UTC
times) but without its per-row execution machinery.

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

from .log_chunks import decode_chunks
from .schema import features_mapping, predictions

log = logging.getLogger(__name__)

# SQLite takes at most 32,766 bound values per statement (3.32 and later).
SQLITE_ROWS_PER_STATEMENT = 32_766 // len(predictions.columns)
# Columns whose values repeat across a request's rows (one time, one version): converted once each.
REPEATING = {"created_at", "model_version", "shadow_version"}
# Rows converted between two pauses of a writer thread, so a request waits for the interpreter
# at most this long (~0.5 ms) rather than a whole switch interval (5 ms).
ROWS_PER_SLICE = 100


def yield_interpreter() -> None:
    time.sleep(0)  # releases the GIL: a waiting request runs now, not after a switch interval


def _convert(name: str, process, values: list) -> list:
    if process is None:
        return values
    if name in REPEATING:
        converted = {value: process(value) for value in set(values)}
        return [converted[value] for value in values]
    return list(map(process, values))


class PredictionInserter:
    def __init__(self, engine: Engine, pause: Callable[[], None] | None = yield_interpreter):
        """`pause` runs every ROWS_PER_SLICE rows converted: beside requests, it lets them in; a
        process of its own (the insert process) passes None."""
        self.engine = engine
        self._pause = pause
        dialect = engine.dialect
        self._columns = [column.name for column in predictions.columns]
        # Features arrive as the JSON text the log stores (see `log_chunks`): they go out as they are.
        self._binds = [(c.name, None if c.name == "features" else c.type.dialect_impl(dialect).bind_processor(dialect))
                       for c in predictions.columns]  # fmt: skip
        self._insert_sql = f"INSERT INTO predictions ({', '.join(self._columns)}) VALUES %s"
        self._driver_errors = (dialect.dbapi.IntegrityError, dialect.dbapi.DataError)

    def insert(self, chunks: bytes) -> None:
        """Store chunks of rows, joined by newlines (see `log_chunks`), in one transaction."""
        self.insert_columns(decode_chunks(chunks))

    def insert_columns(self, columns: dict[str, list]) -> None:
        """Store rows given column by column, as `decode_chunks` gives them (features as JSON text),
        in one transaction."""
        try:
            with self.engine.begin() as conn:
                self._bulk_insert(conn, self._bind_values(columns))
        except (IntegrityError, DataError, *self._driver_errors):
            # A retried batch whose first commit did land, or one row the database refuses: store
            # the rest one by one rather than block the log behind it. A dead database (an
            # OperationalError) still raises, and the writer retries the whole batch later.
            parsed = {**columns, "features": list(map(features_mapping, columns["features"]))}
            rows = zip(*parsed.values(), strict=True)
            self._insert_one_by_one([dict(zip(parsed, values, strict=True)) for values in rows])

    def _bulk_insert(self, conn, values: list[tuple]) -> None:
        if self.engine.dialect.name == "postgresql":
            from psycopg2.extras import execute_values  # the driver this store installs for PostgreSQL

            with conn.connection.cursor() as cursor:
                execute_values(cursor, self._insert_sql % "%s", values, page_size=len(values))
            return
        placeholders = f"({', '.join('?' * len(self._binds))})"
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(values), SQLITE_ROWS_PER_STATEMENT):
                chunk = values[start : start + SQLITE_ROWS_PER_STATEMENT]
                cursor.execute(self._insert_sql % ", ".join([placeholders] * len(chunk)), list(chain(*chunk)))
        finally:
            cursor.close()

    def _bind_values(self, columns: dict[str, list]) -> list[tuple]:
        """The rows as the driver takes them, converted column by column.

        In a thread beside the requests, a driver's executemany would give up and take back the GIL
        for every row, and each take-back can wait for a request's switch interval: hence one
        statement per few hundred rows, and a pause every ROWS_PER_SLICE rows converted."""
        count = len(columns["prediction_id"])
        values: list[tuple] = []
        for start in range(0, count, ROWS_PER_SLICE):
            stop = start + ROWS_PER_SLICE
            converted = [_convert(name, process, columns[name][start:stop]) for name, process in self._binds]
            values += zip(*converted, strict=True)
            if self._pause is not None:
                self._pause()
        return values

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
