"""Monitoring's resource: the prediction log that serving writes, the drift time series, reports,
and how often and on how much traffic the drift sensor looks."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from retrain_platform.core.monitoring import DriftPolicy
from retrain_platform.datasets import DatasetSpec
from retrain_platform.registry import ModelRegistry
from retrain_platform.scopes import scoped_dir, scoped_store_url
from retrain_platform.store import PredictionStore

from .log import MonitoringLog
from .monitor import Monitor


class MonitoringResource(dg.ConfigurableResource):
    store_url: str
    cache_dir: str
    reports_dir: str
    window_rows: int = 5_000  # newest predictions of the production model that a check compares
    min_new_predictions: int = 500  # new predictions needed before the sensor's next check
    repeat_after_hours: float = 24.0  # persistent drift of one model version is reported this often
    # A drift or performance finding launches a retrain only once the labels logged since the
    # newest model was registered reach this share of the rows it learned from (0: at once).
    min_new_label_share: float = 0.25
    false_alarm_rate: float = 0.05  # chance that a check of unchanged traffic flags any column
    min_importance: float = 0.10  # share of the model's importance drifted columns must carry to flag
    drift_retrains_alone: bool = False  # drift that matters asks for a retrain even while the expected AUC holds
    max_model_age_days: float = 0.0  # a model whose newest training data is older asks for a retrain (0: never)

    def in_scope(self, scope: str) -> "MonitoringResource":
        """This resource for another dataset than the default: its own log, cache and reports."""
        if not scope:
            return self
        return self.model_copy(update={"store_url": scoped_store_url(self.store_url, scope),
                                       "cache_dir": str(scoped_dir(self.cache_dir, scope)),
                                       "reports_dir": str(scoped_dir(self.reports_dir, scope))})  # fmt: skip

    def policy(self, false_alarm_rate: float = 0.0, min_importance: float = 0.0, min_rows: int = 0) -> DriftPolicy:
        """The drift policy, with a run's overrides (0: this resource's value)."""
        return DriftPolicy(
            false_alarm_rate=false_alarm_rate or self.false_alarm_rate,
            min_importance=min_importance or self.min_importance,
            min_rows=min_rows or DriftPolicy.min_rows,
        )

    @contextmanager
    def monitor(self, spec: DatasetSpec, registry: ModelRegistry) -> Iterator[Monitor]:
        store = PredictionStore(self.store_url)
        try:
            yield Monitor(spec, registry, store, Path(self.cache_dir))
        finally:
            store.close()

    @contextmanager
    def monitor_store(self) -> Iterator[PredictionStore]:
        store = PredictionStore(self.store_url)
        try:
            yield store
        finally:
            store.close()

    def record(self, row: dict) -> None:
        log = MonitoringLog(self.store_url)
        try:
            log.record(row)
        finally:
            log.close()
