"""The yardsticks of a replay: a static model, and oracles retrained on the 1st of every month
with every label known. Pure functions on the history, no platform involved."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retrain_platform.core.decisions import RetrainTiming, retrain_timing
from retrain_platform.core.evaluation import evaluate_challenger
from retrain_platform.core.gates import GateConfig
from retrain_platform.core.predictor import Predictor
from retrain_platform.core.split import time_split
from retrain_platform.core.training import TrainParams, train_candidate
from retrain_platform.datasets.spec import DatasetSpec


def month_of(frame: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    return pd.to_datetime(frame[spec.timestamp]).dt.to_period("M")


def _train(history: pd.DataFrame, spec: DatasetSpec, params: TrainParams, version: str | None = None):
    """The model that serves (it learned the holdout too with params.learn_holdout), the split,
    and the model the gates judge on the holdout (the same, unless it learned the holdout)."""
    split = time_split(history, spec)
    trained = train_candidate(split, spec, params)
    trained.predictor.version = trained.served.version = version
    return trained.served, split, trained.predictor


def _train_before(history: pd.DataFrame, spec: DatasetSpec, cutoff: pd.Timestamp, params: TrainParams,
                  cache: dict | None, version: str | None = None, window_days: int = 0):  # fmt: skip
    """A model on the `window_days` days before `cutoff` (0: all the history before it); `cache`
    (one per history and params) shares it between policies that retrain on the same days."""
    key = (cutoff, window_days)
    if cache is not None and key in cache:
        served, split, judged = cache[key]
        served.version = judged.version = version
        return served, split, judged
    times = pd.to_datetime(history[spec.timestamp])
    rows = (times < cutoff) & ((times >= cutoff - pd.Timedelta(days=window_days)) if window_days else True)
    trained = _train(history[rows], spec, params, version)
    if cache is not None:
        cache[key] = trained
    return trained


def _fit_and_score(train: pd.DataFrame, test: pd.DataFrame, spec: DatasetSpec, params: TrainParams) -> np.ndarray:
    return _train(train, spec, params)[0].scores(test)


def static_scores(history: pd.DataFrame, spec: DatasetSpec, until: str, params: TrainParams,
                  cache: dict | None = None) -> pd.Series:  # fmt: skip
    """One model trained on everything before `until`, scoring everything after."""
    test = history[pd.to_datetime(history[spec.timestamp]) >= until]
    predictor = _train_before(history, spec, pd.Timestamp(until), params, cache)[0]
    return pd.Series(predictor.scores(test), index=test.index)


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


def _served_scores(history: pd.DataFrame, spec: DatasetSpec, served: list[tuple[pd.Timestamp, Predictor]]) -> pd.Series:
    """Each row scored by the model that was serving at its time: `served` lists (from, model)."""
    times = pd.to_datetime(history[spec.timestamp])
    ends = [start for start, _ in served[1:]] + [times.max() + pd.Timedelta(days=1)]
    scores = []
    for (start, model), end in zip(served, ends, strict=True):
        test = history[(times >= start) & (times < end)]
        scores.append(pd.Series(model.scores(test), index=test.index))
    return pd.concat(scores)


def scheduled_scores(history: pd.DataFrame, spec: DatasetSpec, since: str, retrains: list[pd.Timestamp],
                     label_delay: pd.Timedelta, params: TrainParams, cache: dict | None = None,
                     window_days: int = 0) -> pd.Series:  # fmt: skip
    """Everything from `since` scored as a platform that retrains on the `window_days` days it has
    labels for (0: all its history) would score it: the model trained on all the history before
    `since` until the first retrain, and so on."""
    served = [(pd.Timestamp(since), _train_before(history, spec, pd.Timestamp(since), params, cache)[0])]
    served += [(day, _train_before(history, spec, day - label_delay, params, cache, window_days=window_days)[0])
               for day in retrains]  # fmt: skip
    return _served_scores(history, spec, served)


def gated_scores(history: pd.DataFrame, spec: DatasetSpec, since: str, retrains: list[pd.Timestamp],
                 label_delay: pd.Timedelta, params: TrainParams, gates: GateConfig,
                 cache: dict | None = None, window_days: int = 0,
                 champion_unseen: bool = False) -> tuple[pd.Series, list[str]]:  # fmt: skip
    """As `scheduled_scores`, but a retrained model serves only if it passes the promotion gates
    against the model serving, on the newest rows it did not learn from (as `evaluation_report`
    judges it). Also returns each retrain's verdict. `champion_unseen`: judge on only the holdout
    rows the champion did not learn from either (`evaluation_report` judges on all of them)."""
    promoted = learned_until = pd.Timestamp(since)
    champion = _train_before(history, spec, promoted, params, cache, "1")[0]
    served, verdicts = [(promoted, champion)], []
    for number, day in enumerate(retrains, start=2):
        candidate, split, judged = _train_before(history, spec, day - label_delay, params, cache, str(number), window_days)
        holdout = split.holdout
        if champion_unseen:
            holdout = holdout[pd.to_datetime(holdout[spec.timestamp]) >= learned_until]
        evaluation = evaluate_challenger(judged, champion, holdout, gates,
                                         days_since_promotion=(day - promoted) / pd.Timedelta(days=1))  # fmt: skip
        challenger_auc, champion_auc = evaluation.challenger_metrics["auc"], evaluation.champion_metrics["auc"]
        verdicts.append(f"{day.date()} v{number} ({candidate.kind}) AUC {challenger_auc:.4f} vs v{champion.version} {champion_auc:.4f}, "
                        f"F1 {evaluation.challenger_metrics['f1']:.4f} vs {evaluation.champion_metrics['f1']:.4f}: "
                        f"{evaluation.verdict}")  # fmt: skip
        if champion_unseen:
            verdicts[-1] += f" [{len(holdout):,} of {len(split.holdout):,} holdout rows unseen by the champion]"
        if evaluation.passed:
            champion, promoted, learned_until = candidate, day, day - label_delay
            served.append((day, champion))
    return _served_scores(history, spec, served), verdicts


def new_label_retrains(history: pd.DataFrame, spec: DatasetSpec, since: str, share: float | None,
                       label_delay: pd.Timedelta, window_days: int = 0, max_age_days: float | None = None,
                       share_window_days: int | None = None) -> list[pd.Timestamp]:  # fmt: skip
    """The days a platform retrains, checking once a day with `retrain_timing` as a monitor that
    always has a finding would (today's drift alarms): once the labels that came in since its
    model was trained reach `share` of the rows that model learned from (None: never on new labels
    alone), or once the model's newest training day is `max_age_days` behind the newest labelled
    day. A retrain learns the `window_days` days before the labels' end (0: all the history).
    `share_window_days` counts the model's rows of only its last that many days (None: all it
    learned from)."""
    days = pd.to_datetime(history[spec.timestamp]).dt.normalize()
    per_day = days.value_counts().sort_index()
    timing = RetrainTiming(min_new_label_share=share or 0.0, max_model_age_days=max_age_days)

    def learned_from(until: pd.Timestamp, window: int) -> int:
        return int(per_day[(per_day.index < until) & ((per_day.index >= until - pd.Timedelta(days=window)) if window else True)].sum())

    def counted(until: pd.Timestamp, window: int) -> int:
        return learned_from(until, window if share_window_days is None else min(window or share_window_days, share_window_days))

    known_until = pd.Timestamp(since)  # labels of the days before this are what the model learned from
    trained_on = counted(known_until, 0)  # the first model learned all the history before `since`
    retrains = []
    for day in pd.date_range(pd.Timestamp(since) + pd.Timedelta(days=1), days.max()):
        labelled_until = day - label_delay
        new = int(per_day[(per_day.index >= known_until) & (per_day.index < labelled_until)].sum())
        age = (labelled_until - known_until) / pd.Timedelta(days=1)
        due, enough, _ = retrain_timing(new, trained_on, age, timing)
        if due or (share is not None and enough):
            retrains.append(day)
            known_until, trained_on = labelled_until, counted(labelled_until, window_days)
    return retrains


def monthly_auc(history: pd.DataFrame, spec: DatasetSpec, scores: pd.Series) -> pd.Series:
    """AUC per month of the rows that have a score."""
    rows = history.loc[scores.index]
    months = month_of(rows, spec)
    return pd.Series({
        str(month): roc_auc_score(rows.loc[months == month, spec.target], scores[months == month])
        for month in sorted(months.unique())
    })  # fmt: skip
