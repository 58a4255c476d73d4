"""Confidence-based performance estimation (CBPE): a model's performance before labels arrive.

Calibrate the model's scores on labelled reference rows it did not train on; each calibrated
probability is then the expected chance that its row is positive. The expected confusion matrix
at the decision threshold follows by summing probabilities, and the expected ROC AUC by ranking
rows by the model's own score: the method of NannyML's CBPE (docs/how_it_works/performance_estimation.rst).
No package fits: NannyML 0.13.1 needs lightgbm < 4.6 (we pin 4.7); lfmm 0.1.0 is an alpha benchmark without intervals.

The caveat, which decides how the platform may use it: the estimate holds under covariate shift
(the features move, the relation between features and label stays), because calibration is a
property of that relation. Under concept shift (the same features now mean a different outcome)
the estimate keeps reporting the old relation's performance while the realised one falls; it is
also meaningless for a model that ranks worse than chance (AUC below 0.5). So it is evidence to
weigh beside drift and the realised metrics once labels arrive; it must never decide alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

CALIBRATION_METHODS = ("isotonic", "identity", "auto")


@dataclass(frozen=True, eq=False)
class ScoreCalibrator:
    """A monotone map from model score to probability, kept as the knots of a piecewise-linear curve:
    a few kilobytes of numpy, picklable, and the same answer on every machine (no sklearn object)."""

    method: str
    knots: np.ndarray  # scores, increasing
    values: np.ndarray  # calibrated probabilities at the knots, non-decreasing
    reference_rows: int
    # The same fit on resampled reference rows, as (knots, values): how much the curve owes to
    # which rows the reference happened to hold, which `estimate` folds into its intervals.
    replicas: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    @classmethod
    def fit(cls, scores, labels, method: str = "isotonic", replicas: int = 30, seed: int = 0) -> ScoreCalibrator:
        """Fit on reference rows the model did not train on: calibration fitted on training rows
        inherits the model's overconfidence there.

        `auto` keeps isotonic only where it lowers the error out of sample (5 folds), as NannyML
        does; otherwise the scores are taken as probabilities already. `replicas` bootstrap refits
        are kept beside the curve (none for identity); `seed` makes them repeatable.
        """
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
        scores, labels = _scores_and_labels(scores, labels)
        if method == "auto":
            method = "isotonic" if _isotonic_helps(scores, labels) else "identity"
        if method == "identity":
            return cls("identity", np.array([0.0, 1.0]), np.array([0.0, 1.0]), len(scores))
        knots, values = _isotonic_knots(scores, labels)
        rng = np.random.default_rng(seed)
        refits = []
        for _ in range(replicas):
            rows = rng.integers(0, len(scores), len(scores))
            if len(np.unique(labels[rows])) == 2:
                refits.append(_isotonic_knots(scores[rows], labels[rows]))
        return cls("isotonic", knots, values, len(scores), tuple(refits))

    def transform(self, scores) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if self.method == "identity":
            return np.clip(scores, 0.0, 1.0)
        # Constant beyond the reference's range, as sklearn's out_of_bounds="clip".
        return np.interp(scores, self.knots, self.values)

    def transform_replicas(self, scores) -> np.ndarray | None:
        """Probabilities under each bootstrap refit, shape (replicas, rows); None when there are none."""
        if not self.replicas:
            return None
        scores = np.asarray(scores, dtype=float)
        return np.stack([np.interp(scores, knots, values) for knots, values in self.replicas])


def _scores_and_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-d and alike, got {scores.shape} and {labels.shape}")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    if len(np.unique(labels)) < 2:
        raise ValueError("calibration needs both classes among the reference rows")
    return scores, labels


def _isotonic_knots(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(scores, labels)
    return fitted.X_thresholds_.astype(float), fitted.y_thresholds_.astype(float)


def _isotonic_helps(scores: np.ndarray, labels: np.ndarray, folds: int = 5) -> bool:
    """Out-of-fold Brier score with and without isotonic. Brier, not a binned calibration error:
    binning noise alone makes isotonic look better on scores that are calibrated already."""
    fold = np.random.default_rng(0).permutation(len(scores)) % folds  # fixed: the same rows give the same choice
    calibrated = np.empty_like(scores)
    for k in range(folds):
        train, test = fold != k, fold == k
        if len(np.unique(labels[train])) < 2:
            return False
        knots, values = _isotonic_knots(scores[train], labels[train])
        calibrated[test] = np.interp(scores[test], knots, values)
    return np.mean((calibrated - labels) ** 2) < np.mean((np.clip(scores, 0, 1) - labels) ** 2)


@dataclass(frozen=True)
class PerformanceEstimate:
    """Expected performance of a window at the model's threshold, each interval at `confidence`.

    tp, fp, tn, fn are expected counts; base_rate the expected share of positives, positive_rate
    the share the model calls positive (known exactly: it needs no label)."""

    rows: int
    threshold: float
    confidence: float
    draws: int
    tp: float
    fp: float
    tn: float
    fn: float
    base_rate: float
    positive_rate: float
    auc: float
    auc_low: float
    auc_high: float
    precision: float
    precision_low: float
    precision_high: float
    recall: float
    recall_low: float
    recall_high: float
    f1: float
    f1_low: float
    f1_high: float

    def to_dict(self) -> dict[str, float]:
        return {name: float(value) for name, value in asdict(self).items()}


def expected_auc(calibrated, scores) -> float:
    """Expected ROC AUC of `scores` when row i is positive with probability calibrated[i], in O(n log n).

    The ratio of expected counts: expected (positive, negative) pairs ranked the right way (ties
    count half) over expected (positive, negative) pairs, over pairs of distinct rows. This is the
    AUC of the expected ROC curve, as NannyML estimates it (without its one-row self-pairs); the
    mean of the AUC itself differs from it by O(1/n)."""
    p, scores = _probabilities_and_scores(calibrated, scores)
    order, starts = _ascending_groups(scores)
    p_sorted = p[order]
    positives = np.add.reduceat(p_sorted, starts)
    negatives = np.add.reduceat(1.0 - p_sorted, starts)
    self_pairs = float(np.sum(p * (1.0 - p)))  # a row is never paired with itself
    right = _ranked_right(positives, negatives) - 0.5 * self_pairs  # a row's self-pair sits in its own tie group
    pairs = positives.sum() * negatives.sum() - self_pairs
    return float(right / pairs) if pairs > 0 else float("nan")


def estimate(calibrated, scores, threshold: float, confidence: float = 0.90, draws: int = 200, seed: int = 0,
             replicas: np.ndarray | None = None) -> PerformanceEstimate:  # fmt: skip
    """Expected performance of a window of rows, with intervals from `draws` simulated windows.

    Each simulated window resamples the rows (the window is a finite sample of the traffic) and
    draws every label ~ Bernoulli(calibrated p) (labels not yet known). So an interval covers the
    AUC that labels will reveal on these rows, and the model's AUC on traffic like them. Given
    `replicas` (`ScoreCalibrator.transform_replicas(scores)`), the windows take their p from each
    refit in turn, so the intervals also carry the calibrator's own error. Nothing covers concept
    shift (see the module's caveat).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    p, scores = _probabilities_and_scores(calibrated, scores)
    n = len(p)
    called = scores >= threshold
    tp, fp = float(p[called].sum()), float((1.0 - p[called]).sum())
    fn, tn = float(p[~called].sum()), float((1.0 - p[~called]).sum())
    if replicas is not None:
        replicas = np.atleast_2d(np.asarray(replicas, dtype=float))
        if replicas.shape[1] != len(p) or not np.all((replicas >= 0) & (replicas <= 1)):
            raise ValueError(f"replicas must be (k, {len(p)}) probabilities, got shape {replicas.shape}")
    simulated = _simulate(p if replicas is None else replicas, scores, called, draws, np.random.default_rng(seed))
    tail = (1.0 - confidence) / 2.0

    def interval(name: str) -> tuple[float, float]:
        values = simulated[name]
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return float("nan"), float("nan")
        low, high = np.quantile(values, [tail, 1.0 - tail])
        return float(low), float(high)

    return PerformanceEstimate(
        rows=n, threshold=float(threshold), confidence=float(confidence), draws=int(draws),
        tp=tp, fp=fp, tn=tn, fn=fn,
        base_rate=float(p.mean()), positive_rate=float(called.mean()),
        auc=expected_auc(p, scores), **_named("auc", interval("auc")),
        precision=_ratio(tp, tp + fp), **_named("precision", interval("precision")),
        recall=_ratio(tp, tp + fn), **_named("recall", interval("recall")),
        f1=_ratio(2 * tp, 2 * tp + fp + fn), **_named("f1", interval("f1")),
    )  # fmt: skip


def _named(metric: str, bounds: tuple[float, float]) -> dict[str, float]:
    return {f"{metric}_low": bounds[0], f"{metric}_high": bounds[1]}


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0: sklearn's zero_division=0, as classification_metrics."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    out = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return float(out) if out.ndim == 0 else out


def _probabilities_and_scores(calibrated, scores) -> tuple[np.ndarray, np.ndarray]:
    p, scores = np.asarray(calibrated, dtype=float), np.asarray(scores, dtype=float)
    if p.shape != scores.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(f"calibrated and scores must be 1-d, alike and not empty, got {p.shape} and {scores.shape}")
    if not (np.isfinite(p).all() and np.isfinite(scores).all()):
        raise ValueError("calibrated probabilities and scores must be finite")
    if p.min() < 0 or p.max() > 1:
        raise ValueError("calibrated probabilities must lie in [0, 1]")
    return p, scores


def _ascending_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order by score and where each run of tied scores starts in it: ties rank together."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def _ranked_right(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """(Expected) positive-negative pairs with the positive scored higher, ties half, from per-group
    counts in ascending score order; the last axis is the groups, so many windows go at once."""
    below = np.cumsum(negatives, axis=-1) - negatives
    return np.sum(positives * below + 0.5 * positives * negatives, axis=-1)


def _simulate(p, scores, called, draws: int, rng: np.random.Generator) -> dict:
    """AUC, precision, recall and F1 of `draws` simulated windows, each in O(n) after one sort.

    `p` is one row of probabilities, or several used in turn. A simulated window is counted per tie
    group of scores (bincount), so it is never sorted again."""
    p = np.atleast_2d(p)
    n = p.shape[1]
    order, starts = _ascending_groups(scores)
    first = np.zeros(n, dtype=np.int64)
    first[starts] = 1
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(first) - 1  # each row's tie group, groups numbered by ascending score
    groups = len(starts)
    out = {name: np.empty(draws) for name in ("auc", "precision", "recall", "f1")}
    for d in range(draws):
        rows = rng.integers(0, n, n)
        positive = rng.random(n) < p[d % len(p)][rows]
        drawn = group[rows]
        group_pos = np.bincount(drawn[positive], minlength=groups).astype(float)
        group_neg = np.bincount(drawn, minlength=groups) - group_pos
        pairs = group_pos.sum() * group_neg.sum()
        out["auc"][d] = _ranked_right(group_pos, group_neg) / pairs if pairs > 0 else np.nan
        is_called = called[rows]
        tp = float(np.count_nonzero(positive & is_called))
        fp = float(np.count_nonzero(is_called)) - tp
        fn = float(np.count_nonzero(positive)) - tp
        out["precision"][d] = _ratio(tp, tp + fp)
        out["recall"][d] = _ratio(tp, tp + fn)
        out["f1"][d] = _ratio(2 * tp, 2 * tp + fp + fn)
    return out
