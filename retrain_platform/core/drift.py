"""Fast column drift that reaches the same verdicts as Evidently 0.7's `DataDriftPreset`.

Evidently recomputes everything from both raw frames on every run, and builds plots it may never
show. A drift sensor compares many windows with one fixed reference, so the reference is reduced
once to distinct values and counts per column (`ReferenceProfile`, plain numpy, picklable) and a
window then costs one `np.unique` (numeric) or `pd.factorize` (categorical) over its own rows, plus
work on distinct values only.

Method choice and thresholds follow `_get_default_stattest` in Evidently 0.7.23
(evidently/legacy/calculations/stattests/registry.py), applied per column after NaN and ±inf are
dropped from each side (legacy/calculations/data_drift.py, `get_one_column_drift`):

    non-null reference rows <= 1000:
        numeric, > 5 distinct values      K-S p-value          drift if p <= 0.05
        otherwise, > 2 distinct values    chi-square p-value   drift if p <  0.05
        otherwise                         Z-test p-value       drift if p <  0.05
    more reference rows:
        numeric, > 5 distinct values      Wasserstein / reference std   drift if >= 0.1
        otherwise                         Jensen-Shannon distance       drift if >= 0.1

"Distinct" counts the union of reference and current values, so the method can change per window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

SMALL_REFERENCE_ROWS = 1_000
FEW_DISTINCT = 5
BINARY_DISTINCT = 2
NUMERIC, CATEGORICAL = "num", "cat"  # Evidently's ColumnType values


@dataclass(frozen=True)
class Method:
    name: str  # Evidently's display name, so results line up with its report one to one
    threshold: float
    p_value: bool  # a p-value drifts when small, a distance when large
    inclusive: bool = False  # Evidently's K-S alone uses `p <= threshold`; chi-square and Z use `<`

    def drifted(self, score: float) -> bool:
        if not self.p_value:
            return score >= self.threshold
        return score <= self.threshold if self.inclusive else score < self.threshold


KS = Method("K-S p_value", 0.05, p_value=True, inclusive=True)
CHI_SQUARE = Method("chi-square p_value", 0.05, p_value=True)
Z_TEST = Method("Z-test p_value", 0.05, p_value=True)
WASSERSTEIN = Method("Wasserstein distance (normed)", 0.1, p_value=False)
JENSEN_SHANNON = Method("Jensen-Shannon distance", 0.1, p_value=False)


def choose_method(reference_rows: int, n_distinct: int, kind: str) -> Method:
    """Evidently's automatic choice (see module docstring)."""
    many_values = kind == NUMERIC and n_distinct > FEW_DISTINCT
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if many_values:
            return KS
        return CHI_SQUARE if n_distinct > BINARY_DISTINCT else Z_TEST
    return WASSERSTEIN if many_values else JENSEN_SHANNON


@dataclass(frozen=True)
class ColumnProfile:
    kind: str
    values: np.ndarray  # distinct non-null values; sorted for numeric columns
    counts: np.ndarray  # rows per value
    std: float = math.nan  # population std of a numeric reference: Wasserstein's norm

    @property
    def rows(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    type: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class ProxyMetrics:
    """What a window of scores says about the model before any label arrives."""

    rows: int
    positive_rate: float
    mean_score: float
    std_score: float
    mean_entropy: float  # bits; 1.0 means a coin flip on every row

    @classmethod
    def from_scores(cls, scores: Sequence[float] | np.ndarray | pd.Series, threshold: float = 0.5) -> ProxyMetrics:
        s = np.asarray(scores, dtype=float)
        s = s[np.isfinite(s)]
        if s.size == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        p = np.clip(s, 1e-12, 1 - 1e-12)  # log(0) at confident scores
        entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
        return cls(int(s.size), float(np.mean(s >= threshold)), float(s.mean()), float(s.std()), float(entropy.mean()))

    def shift_from(self, reference: ProxyMetrics) -> dict[str, float]:
        """Current minus reference, per metric: the sign says which way the model's output moved."""
        names = ("positive_rate", "mean_score", "std_score", "mean_entropy")
        return {name: getattr(self, name) - getattr(reference, name) for name in names}


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    drift_share: float
    prediction: ColumnDrift | None = None  # kept out of the share: it is an output, not an input
    proxies: ProxyMetrics | None = None
    reference_proxies: ProxyMetrics | None = None
    skipped: tuple[str, ...] = ()  # columns with no values in the window (compare's skip_empty)

    @property
    def n_drifted(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def share_drifted(self) -> float:
        return self.n_drifted / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return self.share_drifted >= self.drift_share  # Evidently's convention: ">=" drifts

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def by_column(self) -> dict[str, ColumnDrift]:
        return {c.column: c for c in self.columns}

    def to_markdown(self) -> str:
        rows = [*self.columns, *([self.prediction] if self.prediction else [])]
        lines = ["| column | type | method | score | threshold | drifted |", "|---|---|---|---:|---:|---|"]
        lines += [
            f"| {c.column} | {c.type} | {c.method} | {c.score:.4g} | {c.threshold:g} | {'yes' if c.drifted else 'no'} |"
            for c in rows
        ]
        lines.append(f"\n{self.n_drifted}/{len(self.columns)} columns drifted (share {self.share_drifted:.2f}, "
                     f"dataset drift at >= {self.drift_share:g}: {'yes' if self.dataset_drift else 'no'})")
        return "\n".join(lines)


def _distinct(series: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct values, their counts and, for numeric columns, the finite values themselves.

    NaN and ±inf are dropped first, as Evidently does before it chooses a test. Only values actually
    seen count: a pandas Categorical's unused categories would otherwise change the number of
    distinct values, hence the method and chi-square's degrees of freedom.
    """
    if kind == NUMERIC:
        finite = series.to_numpy(dtype=float, na_value=np.nan)
        finite = finite[np.isfinite(finite)]
        values, counts = np.unique(finite, return_counts=True)
        return values, counts, finite
    if pd.api.types.is_numeric_dtype(series.dtype):
        series = series.replace([np.inf, -np.inf], np.nan)
    codes, uniques = pd.factorize(series)  # NaN and None get code -1; twice as fast as value_counts
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    seen = counts > 0
    return np.asarray(uniques, dtype=object)[seen], counts[seen], None


def _profile(series: pd.Series, kind: str) -> ColumnProfile:
    values, counts, finite = _distinct(series, kind)
    if counts.size == 0:  # Evidently refuses an empty column too
        raise ValueError(f"column {series.name!r} has no non-null values in the reference")
    return ColumnProfile(kind, values, counts, float(np.std(finite)) if kind == NUMERIC else math.nan)


def _without(profile: ColumnProfile, series: pd.Series) -> ColumnProfile:
    """The profile of the reference less some of its own rows: counts subtract, no second pass."""
    values, counts, _ = _distinct(series, profile.kind)
    if profile.kind == NUMERIC:
        positions = np.searchsorted(profile.values, values)
        positions = np.minimum(positions, max(profile.values.size - 1, 0))
        inside = profile.values[positions] == values if values.size else np.array([], dtype=bool)
    else:
        index = {key: i for i, key in enumerate(profile.values)}
        positions = np.array([index.get(key, -1) for key in values], dtype=np.int64)
        inside = positions >= 0
    if not np.all(inside):
        raise ValueError(f"column {series.name!r}: the rows taken out are not part of the reference")
    remaining = profile.counts.copy()
    remaining[positions] -= counts
    if np.any(remaining < 0):
        raise ValueError(f"column {series.name!r}: the rows taken out are not part of the reference")
    keep = remaining > 0
    kept_values, kept_counts = profile.values[keep], remaining[keep]
    std = math.nan
    if profile.kind == NUMERIC and kept_counts.size:
        mean = np.average(kept_values, weights=kept_counts)
        std = float(np.sqrt(np.average((kept_values - mean) ** 2, weights=kept_counts)))
    return ColumnProfile(profile.kind, kept_values, kept_counts, std)


def _frequency_score(method: Method, keys: Sequence, ref: np.ndarray, cur: np.ndarray) -> float:
    """Chi-square, Z-test or Jensen-Shannon on counts aligned over the same keys."""
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if method is CHI_SQUARE:
        # A value never seen in the reference has expected count 0: statistic inf, p-value 0,
        # exactly as in Evidently; the division warning says nothing new.
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(stats.chisquare(cur, ref * (n_cur / n_ref)).pvalue)
    if method is Z_TEST:
        if len(keys) == 1:  # one shared value on both sides: Evidently returns p = 1
            return 1.0
        first = min(range(len(keys)), key=keys.__getitem__)  # Evidently's sorted(keys)[0]
        p_ref = float(n_ref - int(ref[first])) / n_ref
        p_cur = float(n_cur - int(cur[first])) / n_cur
        pooled = float(p_ref * n_ref + p_cur * n_cur) / (n_ref + n_cur)
        z = (p_ref - p_cur) / np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
        return float(2 * (1 - stats.norm.cdf(np.abs(z))))
    return float(distance.jensenshannon(ref / n_ref, cur / n_cur))


def _numeric_drift(
    name: str, ref: ColumnProfile, values: np.ndarray, counts: np.ndarray, window: np.ndarray
) -> ColumnDrift:
    grid = np.union1d(ref.values, values)
    method = choose_method(ref.rows, grid.size, NUMERIC)
    if method is KS:  # only with <= 1000 reference rows, so rebuilding them is cheap
        score = float(stats.ks_2samp(np.repeat(ref.values, ref.counts), window).pvalue)
    else:
        ref_on_grid = np.zeros(grid.size, dtype=np.int64)
        cur_on_grid = np.zeros(grid.size, dtype=np.int64)
        ref_on_grid[np.searchsorted(grid, ref.values)] = ref.counts
        cur_on_grid[np.searchsorted(grid, values)] = counts
        if method is WASSERSTEIN:
            # W1 = integral of |F_ref - F_cur| between consecutive distinct values: the same terms
            # scipy.stats.wasserstein_distance sums over the merged raw samples, without re-sorting.
            ref_cdf = np.cumsum(ref_on_grid)[:-1] / ref.rows
            cur_cdf = np.cumsum(cur_on_grid)[:-1] / window.size
            wasserstein = float(np.dot(np.abs(ref_cdf - cur_cdf), np.diff(grid)))
            score = wasserstein / max(ref.std, 0.001)
        else:
            score = _frequency_score(method, grid, ref_on_grid, cur_on_grid)
    return ColumnDrift(name, NUMERIC, method.name, score, method.threshold, method.drifted(score))


def _categorical_drift(name: str, ref: ColumnProfile, values: np.ndarray, counts: np.ndarray) -> ColumnDrift:
    index = {key: i for i, key in enumerate(ref.values)}
    for key in values:
        index.setdefault(key, len(index))
    ref_counts = np.zeros(len(index), dtype=np.int64)
    cur_counts = np.zeros(len(index), dtype=np.int64)
    ref_counts[: ref.values.size] = ref.counts
    cur_counts[[index[key] for key in values]] = counts
    method = choose_method(ref.rows, len(index), CATEGORICAL)
    score = _frequency_score(method, list(index), ref_counts, cur_counts)
    return ColumnDrift(name, CATEGORICAL, method.name, score, method.threshold, method.drifted(score))


def _column_drift(name: str, ref: ColumnProfile, series: pd.Series) -> ColumnDrift:
    values, counts, finite = _distinct(series, ref.kind)
    if counts.size == 0:  # Evidently raises here as well: no verdict exists for an empty column
        raise ValueError(f"column {name!r} has no non-null values in the current window")
    if finite is not None:
        return _numeric_drift(name, ref, values, counts, finite)
    return _categorical_drift(name, ref, values, counts)


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything drift needs from the reference, computed once; pickle it to store it."""

    columns: dict[str, ColumnProfile]
    prediction_column: str | None = None
    prediction: ColumnProfile | None = None
    proxies: ProxyMetrics | None = None
    score_threshold: float = 0.5

    @classmethod
    def build(
        cls,
        reference: pd.DataFrame,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        *,
        prediction_column: str | None = "prediction",
        score_threshold: float = 0.5,
    ) -> ReferenceProfile:
        """Profile the feature columns, and the score column when the reference has one."""
        columns = {name: _profile(reference[name], NUMERIC) for name in numeric_columns}
        columns |= {name: _profile(reference[name], CATEGORICAL) for name in categorical_columns}
        if prediction_column is None or prediction_column not in reference:
            return cls(columns, score_threshold=score_threshold)
        scores = reference[prediction_column]
        return cls(
            columns,
            prediction_column,
            _profile(scores, NUMERIC),
            ProxyMetrics.from_scores(scores, score_threshold),
            score_threshold,
        )

    def without(self, rows: pd.DataFrame) -> ReferenceProfile:
        """This profile less `rows`, which must be part of the reference it was built from."""
        columns = {name: _without(profile, rows[name]) for name, profile in self.columns.items()}
        prediction = self.prediction
        if prediction is not None and self.prediction_column in rows:
            prediction = _without(prediction, rows[self.prediction_column])
        return replace(self, columns=columns, prediction=prediction)

    def compare(self, current: pd.DataFrame, drift_share: float = 0.5, skip_empty: bool = False) -> DriftResult:
        """Drift of every profiled column, plus prediction drift and proxies when scores are present.

        A column with no values in the window has no verdict: an error by default, as in Evidently;
        with `skip_empty` (a monitor on live traffic) it is left out and named in `skipped`.
        """
        columns, skipped = [], []
        for name, ref in self.columns.items():
            try:
                columns.append(_column_drift(name, ref, current[name]))
            except ValueError:
                if not skip_empty:
                    raise
                skipped.append(name)
        columns = tuple(columns)
        if self.prediction is None or self.prediction_column not in current:
            return DriftResult(columns, drift_share, skipped=tuple(skipped))
        scores = current[self.prediction_column]
        return DriftResult(
            columns,
            drift_share,
            _column_drift(self.prediction_column, self.prediction, scores),
            ProxyMetrics.from_scores(scores, self.score_threshold),
            self.proxies,
            tuple(skipped),
        )
