"""The prediction log's tables: on PostgreSQL partitioned by day of `created_at`, so that a read of a
window touches that window's days and retention drops old days whole (see `keep_days`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from retrain_platform.database import UTCDateTime, add_daily_partitions, create_store_engine, create_tables  # noqa: F401
from retrain_platform.database import as_datetime, day_start, json_text, read_frame, utc_time_text  # noqa: F401

metadata = sa.MetaData()
AHEAD_DAYS = 7  # days' partitions made in advance: upkeep that misses a few days refuses no row
DAILY = {"postgresql_partition_by": "RANGE (created_at)"}

# The key holds the partition column, as PostgreSQL requires; an id has one time, so it stays unique.
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("features", sa.JSON(), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("predicted_label", sa.Integer(), nullable=False),
    # The challenger, scored on the same row off the request path, when one exists.
    sa.Column("shadow_version", sa.String(64), nullable=True),
    sa.Column("shadow_score", sa.Float(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint("prediction_id", "created_at"),
    sa.Index("predictions_by_time", "created_at"),
    sa.Index("predictions_by_version", "model_version", "created_at"),
    **DAILY,
)

# A label carries its prediction's time and version: partitioned alike, it is dropped with its
# prediction's day (a foreign key to a partitioned table must hold the partition column), and the
# newest labels of a version are read from this table's index alone.
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("prediction_id", sa.String(36), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("labelled_at", UTCDateTime(), nullable=False),
    sa.Column("label", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("prediction_id", "created_at"),
    sa.ForeignKeyConstraint(["prediction_id", "created_at"], ["predictions.prediction_id", "predictions.created_at"]),
    sa.Index("labels_by_time", "created_at"),
    sa.Index("labels_by_version", "model_version", "created_at"),
    **DAILY,
)

LOG_COLUMNS = [str(c.name) for c in predictions.columns]  # plain str: orjson refuses SQLAlchemy's as keys


def add_partitions(engine: sa.Engine, first: datetime, days: int) -> None:
    add_daily_partitions(engine, first, days, ("predictions", "labels"))


def create_log_tables(engine: sa.Engine) -> None:
    create_tables(engine, metadata)
    add_partitions(engine, datetime.now(UTC) - timedelta(days=1), AHEAD_DAYS + 2)
