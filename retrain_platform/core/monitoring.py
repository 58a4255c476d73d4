"""What monitoring concludes from drift and from labelled predictions: pure functions, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .drift_calibration import CalibratedDrift
from .estimation import PerformanceEstimate
from .live_comparison import CHALLENGER_BETTER, LiveComparison, delong_covariance

OK, WARN, FLAG, ALERT = "ok", "warn", "flag", "alert"
ALARM_LEVELS = (FLAG, ALERT)  # drift that matters: the levels that ask for a retrain and raise alarms


@dataclass(frozen=True)
class DriftPolicy:
    false_alarm_rate: float = 0.05  # chance that a window of unchanged traffic flags any column
    min_importance: float = 0.10  # drifted columns must carry this share of the model's importance to flag
    alert_importance: float = 0.50  # ... and this share for an alert: most of what the model uses moved
    min_rows: int = 200  # fewer recent predictions than this say nothing reliable


@dataclass(frozen=True)
class DriftAssessment:
    level: str
    reasons: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return self.level in ALARM_LEVELS

    def summary(self) -> str:
        return f"{self.level}: " + "; ".join(self.reasons or ["no drift"])


def assess_drift(drift: CalibratedDrift, policy: DriftPolicy = DriftPolicy()) -> DriftAssessment:
    """Drift that matters: columns beyond the reference's own variation, weighed by the model's use."""
    drifted = sorted((c for c in drift.columns if c.drifted), key=lambda c: -c.importance)
    named = ", ".join(f"{c.column} ({c.importance:.0%})" for c in drifted)
    weight = drift.drifted_importance
    evidently = f"Evidently's fixed thresholds would flag {drift.raw.n_drifted} of {len(drift.raw.columns)}"
    level, reasons = OK, []
    if drifted:
        found = (f"{len(drifted)} of {len(drift.columns)} columns drifted beyond the reference's own variation, "
                 f"carrying {weight:.0%} of the model's importance: {named}")  # fmt: skip
        if weight >= policy.alert_importance:
            level = ALERT
        elif weight >= policy.min_importance:
            level = FLAG
        else:
            level, found = WARN, found + f" (under {policy.min_importance:.0%}: little the model uses)"
        reasons.append(found)
    else:
        reasons.append("no column beyond the reference's own variation")
    if drift.prediction is not None and drift.prediction.drifted:
        reasons.append(f"the model's scores moved (z {drift.prediction.z:.1f} > {drift.prediction.bound:.1f})")
        level = WARN if level == OK else level
    if not drift.calibrated:
        reasons.append("not calibrated (too little reference): Evidently's thresholds decide")
    reasons.append(evidently)
    return DriftAssessment(level, reasons)


@dataclass(frozen=True)
class AucInterval:
    """An AUC with its DeLong standard error and a normal interval at 95 %."""

    auc: float
    se: float
    rows: int

    @property
    def low(self) -> float:
        return self.auc - 1.96 * self.se

    @property
    def high(self) -> float:
        return self.auc + 1.96 * self.se

    def __str__(self) -> str:
        return f"{self.auc:.3f} [{self.low:.3f}, {self.high:.3f}] on {self.rows:,} rows"

    @classmethod
    def of(cls, labels, scores) -> AucInterval | None:
        """None unless both classes are present."""
        labels = np.asarray(labels)
        if len(np.unique(labels)) < 2:
            return None
        aucs, covariance = delong_covariance(labels, np.asarray(scores, dtype=float))
        return cls(float(aucs[0]), float(np.sqrt(max(covariance[0, 0], 0.0))), len(labels))


@dataclass(frozen=True)
class Evidence:
    """What monitoring knows about the production model now; any part may be missing."""

    drift: DriftAssessment | None = None
    promised: AucInterval | None = None  # on the version's own holdout, when it was trained
    estimated: PerformanceEstimate | None = None  # from calibrated scores, before labels
    realised: AucInterval | None = None  # on the newest labelled predictions
    live: LiveComparison | None = None  # against the shadow-scored challenger, same labelled rows
    model_age_days: float | None = None  # since the end of the newest retrain's data window (platform clock)

    def past_age(self, max_age_days: float) -> bool:
        """The newest retrain's data is older than `max_age_days` (0: no limit)."""
        return bool(max_age_days) and self.model_age_days is not None and self.model_age_days > max_age_days

    def figures(self) -> dict[str, float | str]:
        """Promised, expected and realised AUC with their intervals, and the live difference, as
        plain numbers for metadata the UI plots over time; what is missing or undefined is left out."""
        values: dict[str, float | str] = {}
        for name, interval in (("promised", self.promised), ("realised", self.realised)):
            if interval is not None:
                values |= {f"{name}_auc": interval.auc, f"{name}_auc_low": interval.low,
                           f"{name}_auc_high": interval.high, f"{name}_rows": interval.rows}  # fmt: skip
        if self.estimated is not None:
            values |= {"estimated_auc": self.estimated.auc, "estimated_auc_low": self.estimated.auc_low,
                       "estimated_auc_high": self.estimated.auc_high}  # fmt: skip
        if self.live is not None:
            values |= {"live_auc_difference": self.live.difference, "live_verdict": self.live.verdict}
        return {k: v for k, v in values.items() if not (isinstance(v, float) and math.isnan(v))}


def retrain_reasons(evidence: Evidence, auc_floor: float, drift_alone: bool = False,
                    max_age_days: float = 0.0) -> tuple[str | None, list[str]]:  # fmt: skip
    """The trigger that asks for a retrain (performance, challenger, drift, age) and every finding.

    Drift alone does not retrain (unless `drift_alone`): drift in features the model uses must come
    with an expected loss (the estimate's interval below the promised AUC). The estimate alone does
    not either: it holds under a shift of the features, not of the relation between features and label.
    A model whose newest training data is older than `max_age_days` (0: no limit) asks by its age."""
    e, trigger, reasons = evidence, None, []
    if e.realised is not None and e.realised.auc < auc_floor:
        trigger = "performance"
        reasons.append(f"realised AUC {e.realised} is under the floor {auc_floor:g}")
    elif e.realised is not None and e.promised is not None and _below(e.realised, e.promised):
        trigger = "performance"
        reasons.append(f"realised AUC {e.realised} is below what the holdout promised, {e.promised}")
    if e.live is not None and e.live.verdict == CHALLENGER_BETTER:
        trigger = trigger or "challenger"
        reasons.append(f"live evidence favours the challenger: AUC {e.live.challenger_auc:.3f} against "
                       f"{e.live.champion_auc:.3f} on the same {e.live.rows:,} labelled rows "
                       f"(difference [{e.live.low:+.3f}, {e.live.high:+.3f}])")  # fmt: skip
    if e.drift is not None and e.drift.retrain:
        if drift_alone:
            trigger = trigger or "drift"
            reasons.append(e.drift.summary())
        elif e.estimated is None or e.promised is None:
            trigger = trigger or "drift"
            reasons.append(f"{e.drift.summary()} (no performance estimate for this version: drift decides)")
        elif e.estimated.auc_high < e.promised.auc:
            trigger = trigger or "drift"
            reasons.append(f"{e.drift.summary()}; expected AUC {e.estimated.auc:.3f} "
                           f"[{e.estimated.auc_low:.3f}, {e.estimated.auc_high:.3f}] is below the promised {e.promised.auc:.3f}")  # fmt: skip
        else:
            reasons.append(f"{e.drift.summary()}; but the expected AUC {e.estimated.auc:.3f} "
                           f"[{e.estimated.auc_low:.3f}, {e.estimated.auc_high:.3f}] holds the promised "
                           f"{e.promised.auc:.3f}: no retrain for drift alone")  # fmt: skip
    if e.past_age(max_age_days):
        trigger = trigger or "age"
        reasons.append(f"the newest retrain's data is {e.model_age_days:.0f} days old (at most {max_age_days:g})")
    return trigger, reasons


def _below(realised: AucInterval, promised: AucInterval) -> bool:
    """The realised AUC is lower than promised by more than both intervals allow (one-sided 95 %)."""
    return promised.auc - realised.auc > 1.645 * float(np.hypot(promised.se, realised.se))
