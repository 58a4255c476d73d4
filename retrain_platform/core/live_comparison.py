"""Champion against challenger on the same labelled live rows: is the difference in AUC real?

The challenger is shadow-scored on the champion's traffic, so both models score the very same
rows and their AUCs are correlated; a paired test uses that and needs far fewer rows than two
independent intervals would. DeLong, DeLong & Clarke-Pearson (1988), computed with the midrank
algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21(11)) in O(n log n) instead of
comparing every positive with every negative.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CHALLENGER_BETTER = "challenger better"
CHAMPION_BETTER = "champion better"
NO_CLEAR_DIFFERENCE = "no clear difference"
TOO_FEW_ROWS = "too few labelled rows"

# DeLong's normal approximation needs enough of each class: each structural component is an
# average over the other class, and the variance is estimated within each class.
MIN_ROWS = 200
MIN_POSITIVES = 30
MIN_NEGATIVES = 30


@dataclass(frozen=True)
class LiveComparison:
    rows: int
    positives: int
    champion_auc: float
    challenger_auc: float
    difference: float  # challenger - champion
    low: float
    high: float
    p_value: float  # two-sided, for no difference
    verdict: str

    def to_dict(self) -> dict[str, float | str]:
        return {name: value if isinstance(value, str) else float(value) for name, value in asdict(self).items()}


def delong_covariance(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of k models scored on the same rows, and their k x k covariance (fast DeLong).

    `scores` is (k, n) or (n,); `labels` 0/1 of length n, with both classes present."""
    labels = np.asarray(labels)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    positive = labels == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong needs both classes among the labelled rows")
    x, y = scores[:, positive], scores[:, ~positive]
    # Midranks within each class and over both: ties count half, as in the Mann-Whitney AUC.
    tx = stats.rankdata(x, axis=1)
    ty = stats.rankdata(y, axis=1)
    tz = stats.rankdata(np.concatenate([x, y], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v_positive = (tz[:, :m] - tx) / n  # per positive: share of negatives it outranks
    v_negative = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives that outrank it
    covariance = _covariance(v_positive) / m + _covariance(v_negative) / n
    return aucs, covariance


def _covariance(components: np.ndarray) -> np.ndarray:
    if components.shape[1] < 2:  # one row of a class: no spread to estimate
        return np.zeros((components.shape[0], components.shape[0]))
    return np.atleast_2d(np.cov(components))


def compare_live(labels, champion_scores, challenger_scores, level: float = 0.95, min_rows: int = MIN_ROWS,
                 min_positives: int = MIN_POSITIVES, min_negatives: int = MIN_NEGATIVES) -> LiveComparison:  # fmt: skip
    """Paired DeLong comparison of the challenger's AUC with the champion's on the same labelled rows.

    The verdict follows the interval at `level`: above 0 "challenger better", below 0 "champion
    better", across 0 "no clear difference"; with fewer rows or positives or negatives than the
    minimums, "too few labelled rows" whatever the figures say (they are still given where defined).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    labels = np.asarray(labels)
    champion = np.asarray(champion_scores, dtype=float)
    challenger = np.asarray(challenger_scores, dtype=float)
    if not (labels.ndim == 1 and labels.shape == champion.shape == challenger.shape):
        raise ValueError(f"labels and both scores must be 1-d and alike: {labels.shape}, {champion.shape}, "
                         f"{challenger.shape}")  # fmt: skip
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (pass labelled rows only)")
    if not (np.isfinite(champion).all() and np.isfinite(challenger).all()):
        raise ValueError("scores must be finite")
    rows, positives = len(labels), int(np.count_nonzero(labels == 1))
    negatives = rows - positives
    if positives == 0 or negatives == 0:
        nan = float("nan")
        return LiveComparison(rows, positives, nan, nan, nan, nan, nan, nan, TOO_FEW_ROWS)

    aucs, covariance = delong_covariance(labels, np.vstack([champion, challenger]))
    difference = float(aucs[1] - aucs[0])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    if variance > 1e-15:
        se = math.sqrt(variance)
        z = stats.norm.ppf(0.5 + level / 2)
        low, high = difference - z * se, difference + z * se
        p_value = float(2 * stats.norm.sf(abs(difference) / se))
    else:  # the models rank every pair alike (identical rankings): no evidence of a difference
        low = high = difference
        p_value = 1.0 if difference == 0 else 0.0

    if rows < min_rows or positives < min_positives or negatives < min_negatives:
        verdict = TOO_FEW_ROWS
    elif low > 0:
        verdict = CHALLENGER_BETTER
    elif high < 0:
        verdict = CHAMPION_BETTER
    else:
        verdict = NO_CLEAR_DIFFERENCE
    return LiveComparison(rows, positives, float(aucs[0]), float(aucs[1]), difference, float(low), float(high),
                          p_value, verdict)  # fmt: skip


def compare_shadow(labelled, challenger: str | None = None, min_rows: int = 1) -> LiveComparison | None:
    """The live comparison on the labelled production rows a challenger shadow-scored.

    `labelled` is the champion's labelled predictions (`label`, `score`, `shadow_score`,
    `shadow_version`); `challenger` defaults to the version that shadowed most of them (the newest,
    if it changed). None with fewer than `min_rows` such rows."""
    shadowed = labelled[labelled["shadow_score"].notna()] if len(labelled) else labelled
    if len(shadowed) == 0:
        return None
    if challenger is None:
        challenger = shadowed["shadow_version"].mode().iloc[0]
    same = shadowed[shadowed["shadow_version"].astype(str) == str(challenger)]
    if len(same) < max(min_rows, 1):
        return None
    return compare_live(same["label"].to_numpy(), same["score"].to_numpy(), same["shadow_score"].to_numpy())
