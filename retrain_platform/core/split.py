"""Time-ordered train / validation / holdout split: the model is always judged on its future."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from retrain_platform.core.window import event_times
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


def learned_until(window_label: str | None) -> pd.Timestamp | None:
    """The first day after a model's data window ("2013-01-01..2013-02-28", its `data_window` tag):
    it learned nothing from that day on. None for a window without dates (no time axis)."""
    _, dots, end = (window_label or "").partition("..")
    try:
        return pd.Timestamp(end) + pd.Timedelta(days=1) if dots else None
    except ValueError:
        return None


def unseen_rows(holdout: pd.DataFrame, spec: DatasetSpec, since: pd.Timestamp | None, min_rows: int) -> tuple[pd.Series, str | None]:
    """Which holdout rows the champion did not learn: it learned its own window, holdout included,
    which a later candidate's holdout may overlap, and judging it on rows it learned favours it.
    Those from `since` on, when at least `min_rows`; else every row. With why, when not all."""
    every = pd.Series(True, index=holdout.index)
    if since is None or spec.timestamp is None:
        return every, None
    unseen = event_times(holdout[spec.timestamp]).to_numpy() >= since.to_datetime64()
    if unseen.all():
        return every, None
    where = f"{unseen.sum():,} of {len(holdout):,} holdout rows come after what the champion learned (up to {since.date() - pd.Timedelta(days=1)})"
    if unseen.sum() < min_rows:
        return every, f"only {where}: both judged on every holdout row"
    return pd.Series(unseen, index=holdout.index), f"both judged on the {where}"
