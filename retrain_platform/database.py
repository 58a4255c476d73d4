"""SQL plumbing the prediction log and the monitoring log share: aware UTC times on every dialect,
and an engine (SQLite by default, PostgreSQL in deployment) whose tables are created by racing processes."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from retrain_platform.scopes import search_path_schema


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


def json_text(value) -> str:  # several times faster than the standard library's on features
    return orjson.dumps(value).decode()


def create_store_engine(url: str, durable_commits: bool = False) -> Engine:
    """`durable_commits`: on SQLite, a commit waits for the disk (a shipped segment is deleted)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=json_text)
        schema = search_path_schema(url)  # a dataset's own schema (retrain_platform.scopes)
        if schema:
            _create_schema(engine, schema)
        return engine
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


def _create_schema(engine: Engine, schema: str, attempts: int = 5) -> None:
    """The schema, unless it exists: looked up first, since CREATE SCHEMA IF NOT EXISTS needs the right
    to create in the database even when the schema is there (a deployment may make it for its user)."""
    quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}).first():
                    return
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            return
        except sa.exc.IntegrityError:  # two processes created it at once: the loser's IF NOT EXISTS raced
            if attempt == attempts - 1:
                raise


def create_tables(engine: Engine, tables: sa.MetaData, attempts: int = 10) -> None:
    """Create `tables` unless they exist. Processes that open a new database
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
