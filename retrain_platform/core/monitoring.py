"""What monitoring concludes from drift and from labelled predictions: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .drift_calibration import CalibratedDrift
from .metrics import classification_metrics

OK, WARN, FLAG, ALERT = "ok", "warn", "flag", "alert"


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
        return self.level in (FLAG, ALERT)

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


def realised_performance(labelled: pd.DataFrame, min_labels: int = 50) -> dict[str, dict[str, float]]:
    """Metrics per model version from logged predictions that have since been labelled."""
    out = {}
    for version, rows in labelled.groupby("model_version"):
        if len(rows) >= min_labels and rows["label"].nunique() == 2:
            out[str(version)] = classification_metrics(rows["label"], rows["score"], predicted=rows["predicted_label"])
    return out
