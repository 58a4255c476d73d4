"""Drift verdicts with a controlled false-alarm rate, weighted by what the model uses.

Evidently's fixed thresholds (normed Wasserstein 0.1, Jensen-Shannon 0.1, p < 0.05) only allow for
sampling noise. Real traffic also varies from week to week, so on thousands of rows nearly every
window crosses them and the alarm is always on. Here each column's statistic is judged against how
much it varies when nothing has changed: contiguous stretches of the reference's own period, of
the check window's size, each compared with the rest of the reference (the way traffic arrives,
not random rows). A column drifts when its statistic lies beyond the upper prediction bound of
those null statistics (log scale, Student t, Bonferroni over the columns), so a stationary window
raises no alarm with probability about `1 - false_alarm_rate`. Evidently's raw score and verdict
stay beside the calibrated one, for people and for its HTML report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .drift import ColumnDrift, DriftResult, ReferenceProfile

MIN_NULL_WINDOWS = 5  # fewer stretches than this say too little about the reference's own variation
MAX_NULL_WINDOWS = 120  # enough for a stable spread; the calibration stays a few seconds
_EPS = 1e-9
_MIN_LOG_SPREAD = 0.05  # a column identical in every stretch would otherwise flag any change at all


def drift_statistic(column: ColumnDrift) -> float:
    """Larger means further from the reference, whatever Evidently's method: distances as they are,
    p-values as -ln p."""
    if column.method.endswith("p_value"):
        return -math.log(max(column.score, 1e-300))
    return column.score


@dataclass(frozen=True)
class NullSpread:
    """How one column's statistic varies between stretches of the reference itself (log scale)."""

    mean: float
    std: float
    windows: int

    def z(self, statistic: float) -> float:
        return (math.log(statistic + _EPS) - self.mean) / self.std

    def bound_z(self, tail: float) -> float:
        """Upper prediction bound for one new stationary window, in units of `std`."""
        n = self.windows
        return float(stats.t.ppf(1 - tail, df=n - 1) * math.sqrt(1 + 1 / n))

    @classmethod
    def of(cls, statistics: list[float]) -> NullSpread:
        logs = np.log(np.asarray(statistics, dtype=float) + _EPS)
        return cls(float(logs.mean()), max(float(logs.std(ddof=1)), _MIN_LOG_SPREAD), len(logs))


@dataclass(frozen=True)
class DriftCalibration:
    """The reference's own variation at one window size, and the model's use of each column."""

    window_rows: int
    nulls: Mapping[str, NullSpread]  # per feature column, and the score column when profiled
    importance: Mapping[str, float]  # share of the model's total importance; sums to 1 over features

    @classmethod
    def fit(
        cls,
        reference: pd.DataFrame,
        profile: ReferenceProfile,
        window_rows: int,
        importance: Mapping[str, float] | None = None,
    ) -> DriftCalibration:
        """`reference` in arrival order (the rows `profile` was built from). Stretches of
        `window_rows` consecutive rows, evenly spaced, each against the rest of the reference."""
        rows = len(reference)
        starts = []
        if rows >= 2 * window_rows:
            step = max(window_rows // 2, (rows - window_rows) // (MAX_NULL_WINDOWS - 1))
            starts = list(range(0, rows - window_rows + 1, step))
        collected: dict[str, list[float]] = {}
        for start in starts:
            stretch = reference.iloc[start : start + window_rows]
            result = profile.without(stretch).compare(stretch, skip_empty=True)
            for column in (*result.columns, *([result.prediction] if result.prediction else [])):
                collected.setdefault(column.column, []).append(drift_statistic(column))
        nulls = {name: NullSpread.of(values) for name, values in collected.items() if len(values) >= MIN_NULL_WINDOWS}
        return cls(window_rows, nulls, normalised(importance, list(profile.columns)))

    def judge(self, result: DriftResult, false_alarm_rate: float = 0.05) -> CalibratedDrift:
        """Calibrated verdicts of one check; a column without a null spread keeps Evidently's."""
        tail = false_alarm_rate / max(len(result.columns), 1)  # Bonferroni: any column, at the rate

        def verdict(column: ColumnDrift, importance: float, tail: float) -> CalibratedColumn:
            null = self.nulls.get(column.column)
            if null is None:
                return CalibratedColumn(column, importance, math.nan, math.nan, column.drifted, calibrated=False)
            z, bound = null.z(drift_statistic(column)), null.bound_z(tail)
            return CalibratedColumn(column, importance, z, bound, z > bound, calibrated=True)

        columns = tuple(verdict(c, self.importance.get(c.column, 0.0), tail) for c in result.columns)
        prediction = verdict(result.prediction, 0.0, false_alarm_rate) if result.prediction else None
        return CalibratedDrift(columns, prediction, false_alarm_rate, self.window_rows, result)


def normalised(importance: Mapping[str, float] | None, columns: list[str]) -> dict[str, float]:
    """Importance as shares of the total; equal shares when the model gives none."""
    values = {c: max(float((importance or {}).get(c, 0.0)), 0.0) for c in columns}
    total = sum(values.values())
    if total <= 0:
        return {c: 1 / len(columns) for c in columns} if columns else {}
    return {c: v / total for c, v in values.items()}


@dataclass(frozen=True)
class CalibratedColumn:
    raw: ColumnDrift  # Evidently's method, score, threshold and verdict
    importance: float
    z: float  # how far beyond the reference's own variation, in null standard deviations
    bound: float  # the z a stationary window stays under, at the false-alarm rate
    drifted: bool
    calibrated: bool

    @property
    def column(self) -> str:
        return self.raw.column


@dataclass(frozen=True)
class CalibratedDrift:
    columns: tuple[CalibratedColumn, ...]
    prediction: CalibratedColumn | None
    false_alarm_rate: float
    window_rows: int
    raw: DriftResult

    @property
    def calibrated(self) -> bool:
        return bool(self.columns) and all(c.calibrated for c in self.columns)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def drifted_importance(self) -> float:
        """Share of the model's importance that sits on drifted columns."""
        return float(sum(c.importance for c in self.columns if c.drifted))

    def to_markdown(self) -> str:
        lines = ["| column | importance | Evidently method | score | Evidently | z vs reference | bound | drifted |",
                 "|---|---:|---|---:|---|---:|---:|---|"]  # fmt: skip
        for c in sorted(self.columns, key=lambda c: -c.importance) + ([self.prediction] if self.prediction else []):
            lines.append(f"| {c.column} | {c.importance:.1%} | {c.raw.method} | {c.raw.score:.4g} | "
                         f"{'drift' if c.raw.drifted else 'no drift'} | {c.z:.2f} | {c.bound:.2f} | "
                         f"{'yes' if c.drifted else 'no'} |")  # fmt: skip
        how = "calibrated on the reference's own variation" if self.calibrated else "not calibrated: Evidently's thresholds"
        lines.append(f"\n{len(self.drifted_columns)}/{len(self.columns)} columns drifted, carrying "
                     f"{self.drifted_importance:.0%} of the model's importance ({how}, false-alarm rate "
                     f"{self.false_alarm_rate:.0%} per check at {self.window_rows:,} rows)")  # fmt: skip
        return "\n".join(lines)
