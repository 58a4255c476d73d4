"""What monitoring concludes from drift and from labelled predictions: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .drift import DriftResult
from .metrics import classification_metrics

OK, WARN, FLAG, ALERT = "ok", "warn", "flag", "alert"


@dataclass(frozen=True)
class DriftPolicy:
    """Defaults from the original design's drift alert decision."""

    flag_share: float = 0.20  # a drifted-column share above this flags the model for retraining
    warn_columns: int = 5  # more drifted features than this warns
    min_rows: int = 200  # fewer recent predictions than this say nothing reliable


@dataclass(frozen=True)
class DriftAssessment:
    level: str
    reasons: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return self.level in (FLAG, ALERT)

    def summary(self) -> str:
        return f"{self.level}: " + ("; ".join(self.reasons) if self.reasons else "no drift")


def assess_drift(result: DriftResult, policy: DriftPolicy = DriftPolicy()) -> DriftAssessment:
    drifted = result.drifted_columns
    share = f"{result.n_drifted} of {len(result.columns)} columns drifted ({result.share_drifted:.0%})"
    reasons = []
    level = OK
    if len(drifted) > policy.warn_columns:
        level, reasons = WARN, [f"{share}: more than {policy.warn_columns}"]
    if result.share_drifted > policy.flag_share:
        level, reasons = FLAG, [f"{share} > {policy.flag_share:.0%}: {', '.join(drifted)}"]
    if result.dataset_drift:
        level, reasons = ALERT, [f"dataset drift: {share} >= {result.drift_share:.0%}: {', '.join(drifted)}"]
    if result.prediction is not None and result.prediction.drifted:
        reasons.append(f"prediction drift ({result.prediction.method} {result.prediction.score:.3g})")
        level = WARN if level == OK else level
    return DriftAssessment(level, reasons)


def realised_performance(labelled: pd.DataFrame, min_labels: int = 50) -> dict[str, dict[str, float]]:
    """Metrics per model version from logged predictions that have since been labelled."""
    out = {}
    for version, rows in labelled.groupby("model_version"):
        if len(rows) >= min_labels and rows["label"].nunique() == 2:
            out[str(version)] = classification_metrics(rows["label"], rows["score"], predicted=rows["predicted_label"])
    return out
