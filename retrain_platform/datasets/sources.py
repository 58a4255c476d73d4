"""Where labelled rows come from: the dataset's history and the labelled prediction log.

The history bootstraps the first model; in the production loop the labelled prediction log that
serving writes keeps the training window current. `history_until` cuts the history at a date, so
that a replay of the past never trains on its own future.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pandas as pd

from retrain_platform.core.window import event_times
from retrain_platform.datasets.spec import DatasetSpec
from retrain_platform.store import PredictionStore

LOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def history_rows(spec: DatasetSpec, path: str = "", until: str = "") -> pd.DataFrame:
    frame = pd.read_parquet(path) if path else spec.load()
    if until and spec.timestamp:
        frame = frame[pd.to_datetime(frame[spec.timestamp], errors="coerce") < pd.Timestamp(until)]
    return frame


def log_rows(store: PredictionStore, spec: DatasetSpec, since: datetime = LOG_EPOCH) -> pd.DataFrame:
    """Labelled predictions created since `since` (only those days are read) as rows of the dataset: the label becomes the target; the logged id and
    event time become the spec's id and timestamp (the prediction's id and time when not sent)."""
    logged = store.labelled_predictions(since)
    if logged.empty:
        return pd.DataFrame(columns=spec.columns)
    rows = logged.rename(columns={"label": spec.target})
    ids = rows.get(spec.id_column)
    fallback_ids = rows["prediction_id"].map(lambda pid: zlib.crc32(pid.encode()) + (1 << 40))
    rows[spec.id_column] = fallback_ids if ids is None else ids.fillna(fallback_ids).astype("int64")
    if spec.timestamp:
        created = rows["created_at"].dt.tz_convert(None)
        sent = event_times(rows[spec.timestamp]) if spec.timestamp in rows else None
        rows[spec.timestamp] = created if sent is None else sent.fillna(created)
    # JSON loses dtypes: a feature that was null in every logged row comes back as objects. The
    # API validated every value already, so this is a plain conversion, not a clean-up.
    numeric = spec.numeric_features
    rows[numeric] = rows[numeric].apply(pd.to_numeric)
    # A row labelled twice cannot happen (the store refuses it), but the same event predicted twice
    # can: keep its latest labelled prediction.
    rows = rows.drop_duplicates(subset=[spec.id_column], keep="last")
    return rows[spec.columns].astype({spec.target: "int64"})


def training_rows(spec: DatasetSpec, history_path: str = "", history_until: str = "",
                  store: PredictionStore | None = None, since: datetime | None = None) -> pd.DataFrame:  # fmt: skip
    history = history_rows(spec, history_path, history_until)
    if store is None:
        return history
    logged = log_rows(store, spec, since or LOG_EPOCH)
    if logged.empty:  # an empty frame would turn every column it is concatenated with into objects
        return history
    if history.empty:  # a dataset whose rows are its log: no file to add them to
        return logged
    # Events in both (replayed history) count once, as the log has them.
    history = history[~history[spec.id_column].isin(logged[spec.id_column])]
    return pd.concat([history, logged], ignore_index=True)
