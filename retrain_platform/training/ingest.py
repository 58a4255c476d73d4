"""Ingest: the recent labelled window of the source history, and the features built from it."""

import dagster as dg
import pandas as pd

from retrain_platform.core.features import build_features
from retrain_platform.core.window import select_window
from retrain_platform.resources import DatasetResource, LabelledSource

from .checks import FEATURE_CHECK_SPECS, feature_check_results
from .metadata import column_schema


class WindowConfig(dg.Config):
    window_days: int = 365  # 0: all the history the source has, up to window_end
    window_end: str = ""  # ISO date, inclusive; empty: the newest data the source has


@dg.asset(group_name="ingest", kinds={"pandas"})
def raw_data(
    context: dg.AssetExecutionContext, config: WindowConfig, dataset: DatasetResource, source: LabelledSource
) -> dg.Output[pd.DataFrame]:
    """Recent labelled rows from the source for the configured window."""
    ds = dataset.of(context)
    spec = ds.spec
    rows = source.of(ds).read(spec, config.window_days)
    frame, window = select_window(rows, spec, config.window_days, config.window_end)
    window.store_on(frame)
    positives = pd.to_numeric(frame[spec.target], errors="coerce").mean() if len(frame) else float("nan")
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "dataset": spec.name,
            "window": window.label(),
            "positive_rate": float(positives),
            "columns": len(frame.columns),
        },
    )


@dg.asset(group_name="features", kinds={"pandas", "pandera"}, check_specs=FEATURE_CHECK_SPECS)
def validated_features(context: dg.AssetExecutionContext, raw_data: pd.DataFrame, dataset: DatasetResource):
    """The spec's columns in time order; blocking Pandera checks guard everything downstream."""
    spec = dataset.of(context).spec
    try:
        frame = build_features(raw_data, spec)
    except ValueError as err:
        raise dg.Failure(str(err)) from err
    yield dg.Output(frame, metadata={"dagster/row_count": len(frame), "dagster/column_schema": column_schema(spec)})
    yield from feature_check_results(frame, spec)
