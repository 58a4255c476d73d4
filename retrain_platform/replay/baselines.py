"""The yardsticks of a replay: a static model, and oracles retrained on the 1st of every month
with every label known. Pure functions on the history, no platform involved."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retrain_platform.core.split import time_split
from retrain_platform.core.training import TrainParams, train_candidate
from retrain_platform.datasets.spec import DatasetSpec


def month_of(frame: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    return pd.to_datetime(frame[spec.timestamp]).dt.to_period("M")


def _fit_and_score(train: pd.DataFrame, test: pd.DataFrame, spec: DatasetSpec, params: TrainParams) -> np.ndarray:
    return train_candidate(time_split(train, spec), spec, params).predictor.scores(test)


def static_scores(history: pd.DataFrame, spec: DatasetSpec, until: str, params: TrainParams) -> pd.Series:
    """One model trained on everything before `until`, scoring everything after."""
    times = pd.to_datetime(history[spec.timestamp])
    train, test = history[times < until], history[times >= until]
    return pd.Series(_fit_and_score(train, test, spec, params), index=test.index)


def oracle_scores(history: pd.DataFrame, spec: DatasetSpec, since: str, lookback_months: int | None,
                  params: TrainParams) -> pd.Series:  # fmt: skip
    """Each month from `since` scored by a model trained on the 1st of that month on the
    `lookback_months` months before it (None: all months before), all labels known."""
    months = month_of(history, spec)
    scores = []
    for month in sorted(months[months >= pd.Period(since, "M")].unique()):
        start = None if lookback_months is None else month - lookback_months
        train = history[(months < month) & ((months >= start) if start is not None else True)]
        test = history[months == month]
        scores.append(pd.Series(_fit_and_score(train, test, spec, params), index=test.index))
    return pd.concat(scores)


def scheduled_scores(history: pd.DataFrame, spec: DatasetSpec, since: str, retrains: list[pd.Timestamp],
                     label_delay: pd.Timedelta, params: TrainParams) -> pd.Series:  # fmt: skip
    """Everything from `since` scored as a platform that retrains on all the history it has labels
    for would score it: the model trained before `since` until the first retrain, and so on."""
    times = pd.to_datetime(history[spec.timestamp])
    starts = [pd.Timestamp(since), *retrains]
    scores = []
    for first, (start, end) in enumerate(zip(starts, [*retrains, times.max() + pd.Timedelta(days=1)], strict=True)):
        known = times < (start if first == 0 else start - label_delay)
        test = history[(times >= start) & (times < end)]
        scores.append(pd.Series(_fit_and_score(history[known], test, spec, params), index=test.index))
    return pd.concat(scores)


def new_label_retrains(history: pd.DataFrame, spec: DatasetSpec, since: str, share: float,
                       label_delay: pd.Timedelta) -> list[pd.Timestamp]:  # fmt: skip
    """The days a platform retrains on all its history, checking once a day whether the labels that
    came in since its model was trained reach `share` of the rows that model learned from."""
    days = pd.to_datetime(history[spec.timestamp]).dt.normalize()
    per_day = days.value_counts().sort_index()
    known_until = pd.Timestamp(since)  # labels of the days before this are what the model learned from
    trained_on = int(per_day[per_day.index < known_until].sum())
    retrains = []
    for day in pd.date_range(pd.Timestamp(since) + pd.Timedelta(days=1), days.max()):
        labelled_until = day - label_delay
        new = int(per_day[(per_day.index >= known_until) & (per_day.index < labelled_until)].sum())
        if new >= share * trained_on:
            retrains.append(day)
            known_until, trained_on = labelled_until, int(per_day[per_day.index < labelled_until].sum())
    return retrains


def monthly_auc(history: pd.DataFrame, spec: DatasetSpec, scores: pd.Series) -> pd.Series:
    """AUC per month of the rows that have a score."""
    rows = history.loc[scores.index]
    months = month_of(rows, spec)
    return pd.Series({
        str(month): roc_auc_score(rows.loc[months == month, spec.target], scores[months == month])
        for month in sorted(months.unique())
    })  # fmt: skip
