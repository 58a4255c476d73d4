"""The prediction log's tables and its database engine: SQLite by default, PostgreSQL in deployment."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url


def as_datetime(value: datetime | str | float) -> datetime:
    """An aware UTC datetime from any form the log takes a time in (see `UTCDateTime`)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: give the prediction store timezone-aware times")
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4)
def _utc_second_text(seconds: int) -> str:
    t = time.gmtime(seconds)  # formatted by hand: strftime's %Y does not pad a year before 1000
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def utc_time_text(value: datetime | str | float) -> str:
    """A time as SQLAlchemy's DateTime stores it on SQLite, in UTC ("2026-12-04 05:03:00.123456"),
    and as the log's segments hold it. Serving's (seconds since the epoch) reuse their second's text."""
    if not isinstance(value, (int, float)):
        value = as_datetime(value).timestamp()
    seconds, micros = divmod(round(value * 1_000_000), 1_000_000)
    return f"{_utc_second_text(seconds)}.{micros:06d}"


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC in and out, also on SQLite (naive text there); takes any form `as_datetime` does."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else as_datetime(value)

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return lambda value: None if value is None else utc_time_text(value)

    def process_result_value(self, value, dialect):
        if value is not None:
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

LOG_COLUMNS = [str(c.name) for c in predictions.columns]  # plain str: orjson refuses SQLAlchemy's as keys
PREDICTION_COLUMNS = [name for name in LOG_COLUMNS if name != "features"]


def insert_statement(dialect: sa.engine.Dialect) -> str:
    """One statement that stores a JSON array of requests, each an array of rows, objects keyed by the
    `predictions` columns (times as `utc_time_text`), with no Python per row; a row whose id is stored
    is left as it is (shipped twice, stored once). Derived from the table: a new column needs nothing."""
    values, row = [], "r.value" if dialect.name == "sqlite" else "r"
    for column in predictions.columns:
        field = f"{row} {'->' if isinstance(column.type, sa.JSON) else '->>'} '{column.name}'"
        if dialect.name == "postgresql" and not isinstance(column.type, sa.JSON):
            if isinstance(column.type, UTCDateTime):
                field = f"({field} || '+00')"  # the segments' times are UTC
            field = f"CAST({field} AS {column.type.compile(dialect=dialect)})"
        values.append(field)
    rows = ("json_each(?) AS request, json_each(request.value) AS r" if dialect.name == "sqlite"
            else "json_array_elements(CAST(%s AS JSON)) AS request, json_array_elements(request) AS r")  # fmt: skip
    # "WHERE true": without it SQLite would read ON CONFLICT as the join's condition.
    return (f"INSERT INTO predictions ({', '.join(c.name for c in predictions.columns)}) SELECT {', '.join(values)} "
            f"FROM {rows} WHERE true ON CONFLICT (prediction_id) DO NOTHING")  # fmt: skip


def json_text(value) -> str:  # several times faster than the standard library's on features
    return orjson.dumps(value).decode()


def create_store_engine(url: str, durable_commits: bool = False) -> Engine:
    """`durable_commits`: on SQLite, a commit waits for the disk (a shipped segment is deleted)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, json_serializer=json_text)
    if parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=json_text)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA journal_mode=WAL")  # monitoring reads while serving writes
        # With WAL, NORMAL loses no commit to a process crash, only the last ones to a power cut.
        dbapi_connection.execute(f"PRAGMA synchronous={'FULL' if durable_commits else 'NORMAL'}")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    return engine


def create_tables(engine: Engine, tables: sa.MetaData = metadata, attempts: int = 10) -> None:
    """Create `tables` (the log's, by default) unless they exist. Processes that open a new database
    together race (SQLite refuses WAL while another holds a lock; PostgreSQL's loser of two CREATE TABLEs fails)."""
    for attempt in range(attempts):
        try:
            tables.create_all(engine)
            return
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            engine.dispose()  # a connection that failed its first PRAGMA must not come back from the pool
            time.sleep(0.1 * (attempt + 1))
