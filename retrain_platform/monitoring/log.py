"""Drift and proxy metrics over time, one row per check, beside the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from retrain_platform.store.schema import UTCDateTime, create_store_engine, create_tables

metadata = sa.MetaData()

drift_checks = sa.Table(
    "drift_checks",
    metadata,
    sa.Column("check_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("checked_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),  # drift_sensor, drift_report, ...
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("n_drifted", sa.Integer, nullable=False),
    sa.Column("share_drifted", sa.Float, nullable=False),
    sa.Column("dataset_drift", sa.Boolean, nullable=False),
    sa.Column("drifted_columns", sa.JSON, nullable=False),
    sa.Column("drifted_importance", sa.Float, nullable=True),  # share of the model's importance that drifted
    sa.Column("evidently_drifted", sa.Integer, nullable=True),  # columns past Evidently's fixed thresholds
    sa.Column("estimated_auc", sa.Float, nullable=True),  # from calibrated scores, before any label
    sa.Column("estimated_auc_low", sa.Float, nullable=True),
    sa.Column("estimated_auc_high", sa.Float, nullable=True),
    sa.Column("realised_auc", sa.Float, nullable=True),  # on the newest labelled predictions
    sa.Column("promised_auc", sa.Float, nullable=True),  # on the version's own holdout
    sa.Column("prediction_drift", sa.Float, nullable=True),
    sa.Column("positive_rate", sa.Float, nullable=True),
    sa.Column("mean_score", sa.Float, nullable=True),
    sa.Column("std_score", sa.Float, nullable=True),
    sa.Column("mean_entropy", sa.Float, nullable=True),
    sa.Column("event_time", UTCDateTime(), nullable=True),  # newest event time in the window, if logged
)


def add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """A log written by an older version lacks the newer, nullable columns: add them in place."""
    present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
    missing = [column for column in table.columns if column.name not in present]
    with engine.begin() as conn:
        for column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


class MonitoringLog:
    def __init__(self, url: str):
        self.engine = create_store_engine(url)
        create_tables(self.engine, metadata)
        add_missing_columns(self.engine, drift_checks)

    def record(self, row: dict) -> None:
        row = {"checked_at": datetime.now(UTC), **row}
        with self.engine.begin() as conn:
            conn.execute(drift_checks.insert(), [row])

    def history(self, limit: int = 1_000) -> pd.DataFrame:
        query = sa.select(drift_checks).order_by(drift_checks.c.check_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in drift_checks.columns])
        return frame.iloc[::-1].reset_index(drop=True)

    def close(self) -> None:
        self.engine.dispose()
