"""Features from raw rows: the spec's columns in time order, values untouched."""

from __future__ import annotations

import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec


def build_features(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    missing = [c for c in spec.columns if c not in raw.columns]
    if missing:
        raise ValueError(f"source data lacks columns the {spec.name} spec needs: {missing}")
    # Values stay as they came: converting here would hide bad types and unknown categories
    # from the data checks that run next.
    frame = raw[spec.columns]
    if spec.timestamp:
        frame = frame.sort_values([spec.timestamp, spec.id_column], kind="stable")
    frame = frame.reset_index(drop=True)
    frame.attrs = dict(raw.attrs)
    return frame
