"""The prediction log and its late labels, in SQL: SQLite by default, PostgreSQL in deployment.

Serving only enqueues predictions (see `BatchWriter`); labels are written at once, since the
caller wants to know whether its prediction id exists. Monitoring reads the log back as frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError

from .batch_writer import BatchWriter, WriterStats

log = logging.getLogger(__name__)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in and out, also on SQLite (which stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give the prediction store timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("features", sa.JSON(), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("predicted_label", sa.Integer(), nullable=False),
    # The challenger, scored on the same row off the request path, when one exists.
    sa.Column("shadow_version", sa.String(64), nullable=True),
    sa.Column("shadow_score", sa.Float(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=True),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("prediction_id", sa.String(36), sa.ForeignKey("predictions.prediction_id"), primary_key=True),
    sa.Column("labelled_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("label", sa.Integer(), nullable=False),
)

PREDICTION_COLUMNS = [c.name for c in predictions.columns if c.name != "features"]
# SQLite takes at most 32,766 bound values per statement (3.32 and later).
SQLITE_ROWS_PER_STATEMENT = 32_766 // len(predictions.columns)
# Columns whose values repeat across a request's rows (one time, one version): converted once each.
REPEATING = {"created_at", "model_version", "shadow_version"}
# Rows converted between two pauses of the writer thread, so a request waits for the interpreter
# at most this long (~0.5 ms) rather than a whole switch interval (5 ms).
ROWS_PER_SLICE = 100


def _json(value) -> str:
    """Features as JSON, several times faster than the standard library on a flat dict."""
    return orjson.dumps(value).decode()


class UnknownPrediction(LookupError):
    """No prediction with this id was ever logged."""


class DuplicateLabel(ValueError):
    """The prediction already has a label; labels are written once."""


@dataclass(frozen=True)
class LabelRecord:
    prediction_id: str
    label: int
    labelled_at: datetime
    model_version: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_store_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=_json)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            # WAL lets monitoring read while the writer thread writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL syncs at checkpoints rather than on every commit: a crash of the
            # process loses nothing, a power cut at most the last commits, and the writer does not
            # wait on the disk for each batch.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, json_serializer=_json)


class PredictionStore:
    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        prepare: Callable[[list[dict]], None] | None = None,
    ):
        """`prepare` runs on each batch in the writer thread before it is stored (shadow scoring)."""
        self.url = url
        self.engine = create_store_engine(url)
        try:
            metadata.create_all(self.engine)
        except sa.exc.DBAPIError:
            # Serving workers start together and race to create the tables; the loser finds them.
            metadata.create_all(self.engine)
        dialect = self.engine.dialect
        self._columns = [column.name for column in predictions.columns]
        self._binds = [(c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in predictions.columns]
        self._insert_sql = f"INSERT INTO predictions ({', '.join(self._columns)}) VALUES %s"
        self._driver_errors = (dialect.dbapi.IntegrityError, dialect.dbapi.DataError)
        self.writer = BatchWriter(
            self._insert_predictions, key="prediction_id", batch_size=batch_size, interval=flush_interval,
            prepare=prepare, name="prediction-writer",
        )  # fmt: skip

    # -- writing --------------------------------------------------------------------------------
    def start(self) -> None:
        self.writer.start()

    def close(self) -> None:
        """Flush every queued prediction, then release the database connections."""
        try:
            self.writer.close()
        finally:
            self.engine.dispose()

    def flush(self) -> int:
        return self.writer.flush()

    def record(self, prediction: dict) -> None:
        """Queue one prediction (a dict with the `predictions` columns) for the writer thread."""
        self.writer.submit(prediction)

    def record_many(self, rows: list[dict]) -> None:
        self.writer.submit_many(rows)

    def stats(self) -> WriterStats:
        return self.writer.stats()

    def _insert_predictions(self, rows: list[dict]) -> None:
        try:
            with self.engine.begin() as conn:
                self._bulk_insert(conn, rows)
        except (IntegrityError, DataError, *self._driver_errors):
            # A retried batch whose first commit did land, or one row the database refuses: store
            # the rest one by one rather than block the log behind it. A dead database (an
            # OperationalError) still raises, and the writer retries the whole batch later.
            self._insert_one_by_one([{name: row.get(name) for name in self._columns} for row in rows])

    def _bulk_insert(self, conn, rows: list[dict]) -> None:
        """Multi-row INSERT statements, values converted by SQLAlchemy's own bind processors (JSON,
        UTC times) but without its per-row execution machinery.

        This thread shares the interpreter with the requests: a driver's executemany gives up and
        takes back the GIL for every row, and each take-back can wait for the request thread's
        switch interval. One statement per few hundred rows costs the request path almost nothing."""
        values = []
        for start in range(0, len(rows), ROWS_PER_SLICE):
            values += self._bind_values(rows[start : start + ROWS_PER_SLICE])
            time.sleep(0)  # hands the interpreter to a waiting request
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

    def _bind_values(self, rows: list[dict]) -> list[tuple]:
        """The rows as the driver takes them, converted column by column."""
        columns = []
        for name, process in self._binds:
            values = [row.get(name) for row in rows]
            if process is not None and name in REPEATING:
                converted = {value: process(value) for value in set(values)}
                values = [converted[value] for value in values]
            elif process is not None:
                values = list(map(process, values))
            columns.append(values)
        return list(zip(*columns, strict=True))

    def _insert_one_by_one(self, rows: list[dict]) -> None:
        for row in rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(predictions.insert(), row)
            except IntegrityError:
                if self.get_prediction(row["prediction_id"]) is None:
                    log.error("prediction %s refused by the database; dropped", row["prediction_id"], exc_info=True)
            except DataError:
                log.error("prediction %s refused by the database; dropped", row["prediction_id"], exc_info=True)

    def add_label(self, prediction_id: str, label: int, labelled_at: datetime | None = None) -> LabelRecord:
        """Attach the true outcome to a logged prediction; raises UnknownPrediction or DuplicateLabel."""
        if self.writer.is_pending(prediction_id):
            self.flush()  # the label may arrive before the writer thread stored its prediction
        labelled_at = labelled_at or utcnow()
        with self.engine.begin() as conn:
            version = conn.execute(
                sa.select(predictions.c.model_version).where(predictions.c.prediction_id == prediction_id)
            ).scalar_one_or_none()
            if version is None:
                raise UnknownPrediction(f"no prediction with id {prediction_id!r}")
            existing = conn.execute(sa.select(labels.c.label).where(labels.c.prediction_id == prediction_id)).first()
            if existing is not None:
                raise DuplicateLabel(f"prediction {prediction_id!r} is already labelled {existing.label}")
            try:
                conn.execute(labels.insert().values(prediction_id=prediction_id, label=int(label), labelled_at=labelled_at))
            except IntegrityError as err:  # a concurrent label for the same id won the race
                raise DuplicateLabel(f"prediction {prediction_id!r} is already labelled") from err
        return LabelRecord(prediction_id, int(label), labelled_at, version)

    # -- reading, for monitoring ---------------------------------------------------------------
    def count_predictions(self, since: datetime | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(predictions)
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def get_prediction(self, prediction_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(predictions).where(predictions.c.prediction_id == prediction_id)).first()
        return dict(row._mapping) if row is not None else None

    def predictions_since(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Predictions created in [since, until), one column per feature, oldest first."""
        query = sa.select(predictions).where(predictions.c.created_at >= since)
        if until is not None:
            query = query.where(predictions.c.created_at < until)
        return self._frame(query.order_by(predictions.c.created_at), PREDICTION_COLUMNS)

    def latest_predictions(self, limit: int, model_version: str | None = None, labelled: bool = False) -> pd.DataFrame:
        """The newest `limit` predictions (of one model version, if given; only labelled ones,
        with `label` and `labelled_at`, if asked), oldest first."""
        if labelled:
            query = sa.select(predictions, labels.c.label, labels.c.labelled_at).join(
                labels, labels.c.prediction_id == predictions.c.prediction_id)  # fmt: skip
            columns = [*PREDICTION_COLUMNS, "label", "labelled_at"]
        else:
            query, columns = sa.select(predictions), PREDICTION_COLUMNS
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)
        newest = query.order_by(predictions.c.created_at.desc()).limit(limit)
        return self._frame(newest, columns).iloc[::-1].reset_index(drop=True)

    def labelled_predictions(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Predictions created in [since, until) that have a label, with `label` and `labelled_at`."""
        query = sa.select(predictions, labels.c.label, labels.c.labelled_at).join(
            labels, labels.c.prediction_id == predictions.c.prediction_id
        ).where(predictions.c.created_at >= since)  # fmt: skip
        if until is not None:
            query = query.where(predictions.c.created_at < until)
        return self._frame(query.order_by(predictions.c.created_at), [*PREDICTION_COLUMNS, "label", "labelled_at"])

    def label_counts(self, since: datetime, until: datetime | None = None) -> tuple[int, int]:
        """How many predictions were created in [since, until), and how many of them have a label."""
        window = predictions.c.created_at >= since
        if until is not None:
            window = window & (predictions.c.created_at < until)
        query = sa.select(sa.func.count(predictions.c.prediction_id), sa.func.count(labels.c.prediction_id)).select_from(
            predictions.outerjoin(labels, labels.c.prediction_id == predictions.c.prediction_id)
        ).where(window)  # fmt: skip
        with self.engine.connect() as conn:
            total, labelled = conn.execute(query).one()
        return total, labelled

    def label_coverage(self, since: datetime, until: datetime | None = None) -> float | None:
        """Share of the predictions created in [since, until) that have a label; None if there are none."""
        total, labelled = self.label_counts(since, until)
        return labelled / total if total else None

    def _frame(self, query, columns: list[str]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        meta = pd.DataFrame.from_records([{c: row[c] for c in columns} for row in rows], columns=columns)
        features = pd.DataFrame.from_records([row["features"] for row in rows])
        for name in ("created_at", "labelled_at"):
            if name in meta:
                meta[name] = pd.to_datetime(meta[name], utc=True)
        floats = ["score", "shadow_score", "latency_ms"]
        meta[floats] = meta[floats].astype("float64")
        # Feature names come from the spec and never clash with the log's own columns.
        return pd.concat([meta, features.drop(columns=[c for c in features if c in meta], errors="ignore")], axis=1)

