"""The prediction log's tables and its database engine: SQLite by default, PostgreSQL in deployment."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url


def aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: give the prediction store timezone-aware times")
    return value.astimezone(UTC)


def as_datetime(value: datetime | str | float) -> datetime:
    """An aware datetime from any form the log takes a time in (see `UTCDateTime`)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return aware_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


@functools.lru_cache(maxsize=4)
def _utc_second_text(seconds: int) -> str:
    t = time.gmtime(seconds)  # formatted by hand: strftime's %Y does not pad a year before 1000
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def sqlite_time_text(value: datetime | str | float) -> str:
    """A time as SQLAlchemy's DateTime stores it on SQLite, in UTC: "2026-12-04 05:03:00.123456".

    From seconds since the epoch (serving's), with the text of the second kept for the next times
    in it; from an aware datetime; or from the ISO 8601 text orjson writes for one, by slicing that
    text. SQLAlchemy's own path %-formats a dict of seven fields for every value, which costs more
    than anything else in storing a prediction."""
    if isinstance(value, (int, float)):
        seconds, micros = divmod(round(value * 1_000_000), 1_000_000)
        return f"{_utc_second_text(seconds)}.{micros:06d}"
    if not isinstance(value, str):
        value = orjson.dumps(aware_utc(value)).decode()[1:-1]
    if value.endswith("+00:00"):
        if len(value) == 32:  # 2026-12-04T05:03:00.123456+00:00
            return f"{value[:10]} {value[11:26]}"
        if len(value) == 25:  # orjson leaves out a microsecond of 0
            return f"{value[:10]} {value[11:19]}.000000"
    return sqlite_time_text(datetime.fromisoformat(value))  # another offset, or naive text (refused)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in and out, also on SQLite (which stores naive text). Takes an aware
    datetime, its ISO 8601 text, or seconds since the epoch."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = as_datetime(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return lambda value: None if value is None else sqlite_time_text(value)

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

# Plain str (SQLAlchemy's names are a str subclass that orjson refuses as a key).
PREDICTION_COLUMNS = [str(c.name) for c in predictions.columns if c.name != "features"]


def json_text(value) -> str:
    """Features as JSON, several times faster than the standard library on a flat dict."""
    return orjson.dumps(value).decode()


def features_mapping(features: dict | str) -> dict:
    """A row's features as a dict, whichever of the two forms it came in."""
    return orjson.loads(features) if isinstance(features, str) else features


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_in_memory(url: str) -> bool:
    """A SQLite database that lives only inside one connection's process."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def create_store_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not is_in_memory(url):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=json_text
        )

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
    return sa.create_engine(url, pool_pre_ping=True, json_serializer=json_text)


def create_tables(engine: Engine, tables: sa.MetaData = metadata, attempts: int = 10) -> None:
    """Create `tables` (the log's, by default) unless they exist. Processes that open one new
    database together race (serving workers, a sensor and a run): SQLite refuses a connection's
    switch to WAL while another holds a lock ("database is locked", at once, whatever the busy
    timeout), and a table found missing can be created by another process before this one's
    CREATE. On PostgreSQL, the loser of two CREATE TABLEs waits for the winner's commit, then
    fails on the catalog's unique index (an IntegrityError), or finds the table there (a
    ProgrammingError). Each of those is worth another look after a pause."""
    for attempt in range(attempts):
        try:
            tables.create_all(engine)
            return
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            engine.dispose()  # a connection that failed its first PRAGMA must not come back from the pool
            time.sleep(0.1 * (attempt + 1))
