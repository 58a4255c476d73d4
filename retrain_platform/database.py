"""SQL plumbing the prediction log and the monitoring log share: aware UTC times on every dialect,
an engine (SQLite by default, PostgreSQL in deployment) whose tables are created by racing processes,
daily partitions, and rows read fast into a frame."""

from __future__ import annotations

import functools
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from retrain_platform.scopes import search_path_schema

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


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


def day_start(when: datetime) -> datetime:
    return as_datetime(when).replace(hour=0, minute=0, second=0, microsecond=0)


def add_daily_partitions(engine: Engine, first: datetime, days: int, tables: tuple[str, ...]) -> None:
    """PostgreSQL: `tables`' missing partitions by day of `created_at` from `first`'s day on, and a default
    one that takes a row of any other day (a replay of the past, a clock far off) rather than refuse it."""
    if engine.dialect.name != "postgresql":
        return
    wanted = {f"{table}_default": f"{table} DEFAULT" for table in tables}
    for day in (day_start(first) + timedelta(days=n) for n in range(days)):
        bounds = f"FOR VALUES FROM ('{day:%Y-%m-%d} 00:00+00') TO ('{day + timedelta(days=1):%Y-%m-%d} 00:00+00')"
        wanted |= {f"{table}_{day:%Y%m%d}": f"{table} {bounds}" for table in tables}
    with engine.connect() as conn:
        missing = conn.execute(sa.text("SELECT name FROM unnest(CAST(:names AS text[])) AS name WHERE to_regclass(name) IS NULL"),
                               {"names": list(wanted)}).scalars().all()  # fmt: skip
    for name in sorted(missing, key=lambda n: not n.endswith("_default")):
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {wanted[name]}")
        except sa.exc.DBAPIError as err:  # made by another process just now, or its day has rows in the default
            log.info("partition %s not made: %s", name, str(err).splitlines()[0])


def read_frame(engine: Engine, query: sa.Select) -> pd.DataFrame:
    """`query`'s rows as a frame, its column `features` (JSON text) made one column per key, its
    `UTCDateTime` columns aware UTC and its floats float64 (a column of None included)."""
    import pandas as pd  # here: serving imports the store and never reads frames

    with engine.connect() as conn:
        result = conn.execute(query)
        # The driver's rows: SQLAlchemy's conversion of each value, and a dict per row, cost more than the
        # read. Times come as aware datetimes (PostgreSQL) or UTC text (SQLite), features as JSON text.
        frame = pd.DataFrame.from_records(result.cursor.fetchall(), columns=list(result.keys()))
    features = pd.DataFrame(orjson.loads(f"[{','.join(frame.pop('features'))}]"))  # one parse: several times faster
    for column in query.selected_columns:
        if isinstance(column.type, UTCDateTime):
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True, format="ISO8601", cache=False)
        elif isinstance(column.type, sa.Float):
            frame[column.name] = frame[column.name].astype("float64")
    # Feature names come from the spec and never clash with the log's own columns.
    return pd.concat([frame, features.drop(columns=[c for c in features if c in frame], errors="ignore")], axis=1)
