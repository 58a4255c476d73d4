"""The monitor: served traffic of the production model against that version's reference.

Plain Python (no Dagster) so that the drift sensor, the drift_report and model_health assets share
it. What a version's checks need (its reference profile, drift calibrations, score calibrator and
the AUC its holdout promised) is built once and cached on disk: a check then costs one pass over
the window.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from retrain_platform.core import clock
from retrain_platform.core.drift import ReferenceProfile
from retrain_platform.core.drift_calibration import CalibratedDrift, DriftCalibration
from retrain_platform.core.files import write_atomically
from retrain_platform.core.estimation import PerformanceEstimate, ScoreCalibrator, estimate
from retrain_platform.core.live_comparison import compare_shadow
from retrain_platform.core.monitoring import (
    AucInterval,
    DriftAssessment,
    DriftPolicy,
    Evidence,
    assess_drift,
)
from retrain_platform.core.split import learned_until
from retrain_platform.core.window import event_times
from retrain_platform.datasets.spec import DatasetSpec
from retrain_platform.registry import ModelRegistry
from retrain_platform.store import PredictionStore

SCORE = "prediction"  # the reference's score column; the log calls it `score`


@dataclass(frozen=True)
class DriftCheck:
    version: str
    window: pd.DataFrame
    drift: CalibratedDrift
    assessment: DriftAssessment
    estimated: PerformanceEstimate | None = None  # the champion's performance from calibrated scores

    def record(self, source: str, spec: DatasetSpec, evidence: Evidence | None = None) -> dict:
        """One row for the monitoring log's time series."""
        drift, proxies = self.drift, self.drift.raw.proxies
        newest_event = None
        if spec.timestamp and spec.timestamp in self.window:
            newest = event_times(self.window[spec.timestamp]).max()
            newest_event = None if pd.isna(newest) else newest.tz_localize("UTC").to_pydatetime()
        return {
            "model_version": self.version,
            "source": source,
            "rows": len(self.window),
            "level": self.assessment.level,
            "n_drifted": len(drift.drifted_columns),
            "share_drifted": len(drift.drifted_columns) / max(len(drift.columns), 1),
            "dataset_drift": self.assessment.retrain,
            "drifted_columns": drift.drifted_columns,
            "drifted_importance": drift.drifted_importance,
            "evidently_drifted": drift.raw.n_drifted,
            "prediction_drift": None if drift.prediction is None else drift.prediction.raw.score,
            "positive_rate": proxies.positive_rate if proxies else None,
            "mean_score": proxies.mean_score if proxies else None,
            "std_score": proxies.std_score if proxies else None,
            "mean_entropy": proxies.mean_entropy if proxies else None,
            "event_time": newest_event,
            **({f"estimated_{k}": getattr(self.estimated, k) for k in ("auc", "auc_low", "auc_high")}
               if self.estimated else {}),
            "realised_auc": evidence.realised.auc if evidence and evidence.realised else None,
            "promised_auc": evidence.promised.auc if evidence and evidence.promised else None,
        }


@dataclass(frozen=True)
class DayHealth:
    version: str  # the version that served most of the day
    served: int  # every prediction of the day
    rows: int  # those of `version`
    labelled: int  # those of `version` with a label so far
    check: DriftCheck | None  # None with too few rows
    evidence: Evidence

    def metadata(self) -> dict[str, float | str]:
        """Plain numbers and words, for the asset's metadata (plotted per partition)."""
        values: dict[str, float | str] = {"model_version": self.version, "served": self.served, "rows": self.rows,
                                          "labelled": self.labelled}  # fmt: skip
        if self.check is not None:
            values |= {"drift_level": self.check.assessment.level,
                       "drifted_importance": self.check.drift.drifted_importance,
                       "drifted_columns": ", ".join(self.check.drift.drifted_columns) or "none"}  # fmt: skip
        return values | self.evidence.figures()


@dataclass
class VersionProfile:
    """What checks of one model version need, built once from its reference and cached."""

    profile: ReferenceProfile
    importance: dict[str, float]
    calibrator: ScoreCalibrator | None  # fitted on the version's holdout scores; None for older versions
    promised: AucInterval | None  # the version's AUC on its holdout
    calibrations: dict[int, DriftCalibration] = field(default_factory=dict)  # by window size


def calibration_size(rows: int, window_rows: int) -> int:
    """The window size a check of `rows` rows is calibrated at: the check window, halved until it
    fits. A smaller null window is noisier, so a short check is judged conservatively."""
    size = window_rows
    while size > rows and size > 1:
        size //= 2
    return size


class Monitor:
    def __init__(self, spec: DatasetSpec, registry: ModelRegistry, store: PredictionStore, cache_dir: Path):
        self.spec, self.registry, self.store = spec, registry, store
        self.cache_dir = cache_dir
        self._loaded: dict[str, VersionProfile] = {}  # a tick's check and evidence read the cache once

    def reference(self, version: str) -> pd.DataFrame:
        """What the version learned from, in arrival order."""
        reference = self.registry.load_reference(version)
        if self.spec.timestamp:
            reference = reference.sort_values(self.spec.timestamp, kind="stable")
        return reference

    def _profile(self, version: str, window_size: int | None = None) -> VersionProfile:
        """The version's cached profile, with a drift calibration at `window_size` if given: built
        once, then read from the cache (a check costs one pass over its window)."""
        path = self.cache_dir / f"{self.registry.model_name}-v{version}.monitor.pkl"
        cached = self._loaded.get(version)
        if cached is None and path.exists():
            cached = self._loaded[version] = pickle.loads(path.read_bytes())
        if cached is not None and (window_size is None or window_size in cached.calibrations):
            return cached
        reference = self.reference(version)
        if cached is None:
            profile = ReferenceProfile.build(
                reference, self.spec.numeric_features, self.spec.categorical_features,
                prediction_column=SCORE, score_threshold=self.registry.version_info(version).threshold,
            )  # fmt: skip
            holdout = self.registry.load_holdout_scores(version)
            calibrator = promised = None
            if holdout is not None and holdout["label"].nunique() == 2:
                calibrator = ScoreCalibrator.fit(holdout["score"], holdout["label"])
                promised = AucInterval.of(holdout["label"], holdout["score"])
            cached = VersionProfile(profile, self.registry.load_predictor(version).importance(), calibrator, promised)
        if window_size is not None:
            cached.calibrations[window_size] = DriftCalibration.fit(reference, cached.profile, window_size,
                                                                    cached.importance)  # fmt: skip
        write_atomically(path, pickle.dumps(cached))  # a concurrent sensor tick never reads half a profile
        self._loaded[version] = cached
        return cached

    def window(self, version: str, rows: int) -> pd.DataFrame:
        """The newest `rows` predictions served by `version`, scores under the reference's name."""
        return self.store.latest_predictions(rows, model_version=version).rename(columns={"score": SCORE})

    def check(self, version: str, rows: int, policy: DriftPolicy = DriftPolicy()) -> DriftCheck | None:
        """The newest `rows` predictions against the reference; None when the version has served
        fewer than `policy.min_rows`."""
        window = self.window(version, rows)
        if len(window) < policy.min_rows:
            return None
        size = calibration_size(len(window), rows)
        cached = self._profile(version, size)
        drift = cached.calibrations[size].judge(cached.profile.compare(window, skip_empty=True), policy.false_alarm_rate)
        return DriftCheck(version, window, drift, assess_drift(drift, policy), self._estimate(cached, window))

    @staticmethod
    def _estimate(cached: VersionProfile, window: pd.DataFrame) -> PerformanceEstimate | None:
        if cached.calibrator is None:
            return None
        scores = window[SCORE].to_numpy(dtype=float)
        return estimate(cached.calibrator.transform(scores), scores, cached.profile.score_threshold,
                        replicas=cached.calibrator.transform_replicas(scores))  # fmt: skip

    def evidence(self, check: DriftCheck | None, version: str, rows: int, min_labels: int = 200,
                 age: bool = False) -> Evidence:  # fmt: skip
        """Everything monitoring knows about `version` now: drift and the estimate (from `check`),
        what its holdout promised, its realised AUC and the live comparison with the challenger; the
        age of the newest retrain too when `age` (registry reads, asked for only where a maximum age
        is set). The newest retrain, promoted or not: a candidate the gates rejected learned the same
        data, and counting from the old champion would ask again at every tick after a rejection."""
        evidence = self._evidence(check, version, self.store.latest_predictions(rows, model_version=version, labelled=True),
                                  min_labels)  # fmt: skip
        if not age:
            return evidence
        return replace(evidence, model_age_days=self.model_age_days(self.registry.newest_version() or version))

    def model_age_days(self, version: str) -> float | None:
        """Days from the end of the version's data window to now, on the platform clock (simulated in
        a replay); None for a dataset without time."""
        learned = learned_until(self.registry.version_info(version).tags.get("data_window"))
        return None if learned is None else (clock.now() - learned.tz_localize(UTC)).total_seconds() / 86_400

    def _evidence(self, check: DriftCheck | None, version: str, labelled: pd.DataFrame, min_labels: int = 200) -> Evidence:
        realised = AucInterval.of(labelled["label"], labelled["score"]) if len(labelled) >= min_labels else None
        live = compare_shadow(labelled, min_rows=min_labels)
        return Evidence(
            drift=check.assessment if check else None,
            promised=self._profile(version).promised,
            estimated=check.estimated if check else None,
            realised=realised,
            live=live,
        )

    def day(self, start: datetime, end: datetime, window_rows: int, policy: DriftPolicy = DriftPolicy()) -> DayHealth | None:
        """The health of the production traffic served in [start, end): the version that served
        most of it, its drift and expected AUC on that traffic, and its realised AUC and live
        comparison on what has been labelled so far. None when nothing was served."""
        served = self.store.predictions_since(start, end)
        if served.empty:
            return None
        version = str(served["model_version"].mode().iloc[0])
        ours = served[served["model_version"] == version].rename(columns={"score": SCORE})
        labelled = self.store.labelled_predictions(start, end)
        labelled = labelled[labelled["model_version"] == version]
        check = None
        if len(ours) >= policy.min_rows:
            size = calibration_size(len(ours), window_rows)
            cached = self._profile(version, size)
            drift = cached.calibrations[size].judge(cached.profile.compare(ours, skip_empty=True), policy.false_alarm_rate)
            check = DriftCheck(version, ours, drift, assess_drift(drift, policy), self._estimate(cached, ours))
        evidence = self._evidence(check, version, labelled)
        return DayHealth(version, len(served), len(ours), len(labelled), check, evidence)
