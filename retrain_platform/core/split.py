"""Time-ordered train / validation / holdout split: the model is always judged on its future."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame


def time_split(frame: pd.DataFrame, spec: DatasetSpec, validation: float = 0.15, holdout: float = 0.15) -> Split:
    """Oldest rows train, the next validate (early stopping, threshold), the newest are held out.

    A dataset with no time axis keeps its row order.
    """
    if not (0 < validation < 1 and 0 < holdout < 1 and validation + holdout < 1):
        raise ValueError(f"fractions must be in (0, 1) and sum below 1: validation={validation}, holdout={holdout}")
    ordered = frame.sort_values([spec.timestamp, spec.id_column], kind="stable") if spec.timestamp else frame
    n = len(ordered)
    train_end = int(n * (1 - validation - holdout))
    validation_end = int(n * (1 - holdout))
    return Split(ordered.iloc[:train_end], ordered.iloc[train_end:validation_end], ordered.iloc[validation_end:])


def reference_rows(split: Split) -> pd.DataFrame:
    """What the model learned from (train and validation), in arrival order: the drift baseline of
    its version. Whole, not sampled: drift is calibrated on contiguous stretches of it."""
    return pd.concat([split.train, split.validation])
