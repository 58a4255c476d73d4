"""The monitor: served traffic of the production model against that version's reference.

Plain Python (no Dagster) so that the drift sensor and the drift_report asset share it. The
reference profile of a version is built once and cached on disk: a check then costs one pass over
the window.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from retrain_platform.core.drift import DriftResult, ReferenceProfile
from retrain_platform.core.monitoring import (
    DriftAssessment,
    DriftPolicy,
    assess_drift,
    realised_performance,
)
from retrain_platform.datasets.spec import DatasetSpec
from retrain_platform.core.files import write_atomically
from retrain_platform.registry import ModelRegistry
from retrain_platform.store import PredictionStore

SCORE = "prediction"  # the reference's score column; the log calls it `score`


@dataclass(frozen=True)
class DriftCheck:
    version: str
    window: pd.DataFrame
    result: DriftResult
    assessment: DriftAssessment

    def record(self, source: str, spec: DatasetSpec) -> dict:
        """One row for the monitoring log's time series."""
        r, proxies = self.result, self.result.proxies
        newest_event = None
        if spec.timestamp and spec.timestamp in self.window:
            newest = pd.to_datetime(self.window[spec.timestamp], errors="coerce").max()
            newest_event = None if pd.isna(newest) else newest.tz_localize("UTC").to_pydatetime()
        return {
            "model_version": self.version,
            "source": source,
            "rows": len(self.window),
            "level": self.assessment.level,
            "n_drifted": r.n_drifted,
            "share_drifted": r.share_drifted,
            "dataset_drift": r.dataset_drift,
            "drifted_columns": r.drifted_columns,
            "prediction_drift": None if r.prediction is None else r.prediction.score,
            "positive_rate": proxies.positive_rate if proxies else None,
            "mean_score": proxies.mean_score if proxies else None,
            "std_score": proxies.std_score if proxies else None,
            "mean_entropy": proxies.mean_entropy if proxies else None,
            "event_time": newest_event,
        }


class Monitor:
    def __init__(self, spec: DatasetSpec, registry: ModelRegistry, store: PredictionStore, cache_dir: Path):
        self.spec, self.registry, self.store = spec, registry, store
        self.cache_dir = cache_dir

    def reference(self, version: str) -> pd.DataFrame:
        return self.registry.load_reference(version)

    def profile(self, version: str) -> ReferenceProfile:
        path = self.cache_dir / f"{self.registry.model_name}-v{version}.profile.pkl"
        if path.exists():
            return pickle.loads(path.read_bytes())
        spec = self.spec
        profile = ReferenceProfile.build(
            self.reference(version), spec.numeric_features, spec.categorical_features,
            prediction_column=SCORE, score_threshold=self.registry.version_info(version).threshold,
        )  # fmt: skip
        write_atomically(path, pickle.dumps(profile))  # a concurrent sensor tick never reads half a profile
        return profile

    def window(self, version: str, rows: int) -> pd.DataFrame:
        """The newest `rows` predictions served by `version`, scores under the reference's name."""
        return self.store.latest_predictions(rows, model_version=version).rename(columns={"score": SCORE})

    def realised(self, version: str, rows: int, min_labels: int = 200) -> dict[str, float] | None:
        """Metrics of `version` on its newest labelled predictions; None with too few labels."""
        labelled = self.store.latest_predictions(rows, model_version=version, labelled=True)
        return realised_performance(labelled, min_labels).get(version)

    def check(self, version: str, rows: int, policy: DriftPolicy = DriftPolicy()) -> DriftCheck | None:
        """None when the version has served fewer than `policy.min_rows` predictions."""
        window = self.window(version, rows)
        if len(window) < policy.min_rows:
            return None
        result = self.profile(version).compare(window, skip_empty=True)
        return DriftCheck(version, window, result, assess_drift(result, policy))
