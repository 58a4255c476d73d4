"""Classification metrics for a binary model, from scores and a decision threshold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def classification_metrics(y_true, scores, threshold: float = 0.5, predicted=None) -> dict[str, float]:
    """Metrics of scores at a threshold, or of the labels a model already `predicted` (as logged)."""
    y_true = np.asarray(y_true, dtype=int)
    scores = np.clip(np.asarray(scores, dtype=float), 1e-7, 1 - 1e-7)
    predicted = (scores >= threshold).astype(int) if predicted is None else np.asarray(predicted, dtype=int)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "rows": float(len(y_true)),
        "auc": float(roc_auc_score(y_true, scores)) if both_classes else float("nan"),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "brier": float(brier_score_loss(y_true, scores)),
        "log_loss": float(log_loss(y_true, scores, labels=[0, 1])),
        "base_rate": float(y_true.mean()),
        "positive_rate": float(predicted.mean()),
    }


def best_f1_threshold(y_true, scores) -> float:
    """The score threshold that maximises F1, chosen on validation data (never on the holdout)."""
    precision, recall, thresholds = precision_recall_curve(np.asarray(y_true, dtype=int), np.asarray(scores))
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5
