"""Dagster resources: everything that differs between a laptop and a deployment lives here."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow

from retrain_platform.core.decisions import RetrainPolicy
from retrain_platform.datasets import DatasetSpec, get_spec
from retrain_platform.monitoring import Monitor
from retrain_platform.registry import ModelRegistry, ensure_experiment
from retrain_platform.sources import training_rows
from retrain_platform.store import PredictionStore, labelled_share
from retrain_platform.store.monitoring_log import MonitoringLog


class DatasetResource(dg.ConfigurableResource):
    """Which dataset spec the graph runs on."""

    name: str = "flights"

    @property
    def spec(self) -> DatasetSpec:
        return get_spec(self.name)


class LabelledSource(dg.ConfigurableResource):
    """The labelled rows a run reads: the history (vendored, or a Parquet file), cut at
    `history_until`, plus the labelled prediction log when `store_url` is set."""

    history_path: str = ""
    history_until: str = ""
    store_url: str = ""

    def _store(self) -> PredictionStore | None:
        return PredictionStore(self.store_url) if self.store_url else None

    def read(self, spec: DatasetSpec) -> pd.DataFrame:
        store = self._store()
        try:
            return training_rows(spec, self.history_path, self.history_until, store)
        finally:
            if store is not None:
                store.close()

    def label_counts(self, since: datetime) -> tuple[int, int] | None:
        """Predictions logged since `since`, and how many have a label; None when runs do not learn
        from the log."""
        store = self._store()
        if store is None:
            return None
        try:
            return store.label_counts(since)
        finally:
            store.close()

    def label_coverage(self, since: datetime) -> float | None:
        """Share of logged predictions since `since` that have a label; None without a log."""
        counts = self.label_counts(since)
        return labelled_share(*counts) if counts else None


class RegistryResource(dg.ConfigurableResource):
    """The MLflow tracking store and model registry."""

    tracking_uri: str
    artifact_root: str
    ui_url: str = "http://127.0.0.1:5000"

    def for_dataset(self, spec: DatasetSpec) -> ModelRegistry:
        return ModelRegistry(self.tracking_uri, spec.model_name)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, model_name: str, version: str) -> str:
        return f"{self.ui_url}/#/models/{model_name}/versions/{version}"


class MlflowTracking:
    """dagster-mlflow's MlFlow tracker (one MLflow run per Dagster run, tagged with its id), started
    on first use: the in-process executor initialises every resource when a run starts, and a run
    that stops at a failed data check should leave no empty MLflow run behind."""

    def __init__(self, init_context):
        self._init_context = init_context
        self._tracker: MlFlow | None = None

    def start(self) -> MlFlow:
        if self._tracker is None:
            config = self._init_context.resource_config
            # dagster-mlflow calls mlflow.set_experiment, which would put artifacts under ./mlruns
            # in the working directory; create the experiment first with the platform's root.
            ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"], config["artifact_location"])
            self._tracker = MlFlow(self._init_context)
        return self._tracker


class DecisionsResource(dg.ConfigurableResource):
    """The decisions folder and the retrain policy (cooldown, weekly limit)."""

    folder: str
    cooldown_hours: float = 24.0
    max_per_week: int = 3

    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(cooldown_hours=self.cooldown_hours, max_per_week=self.max_per_week)


class MonitoringResource(dg.ConfigurableResource):
    """The prediction log that serving writes, the drift time series, and where reports go."""

    store_url: str
    cache_dir: str
    reports_dir: str

    @contextmanager
    def monitor(self, spec: DatasetSpec, registry: ModelRegistry) -> Iterator[Monitor]:
        store = PredictionStore(self.store_url)
        try:
            yield Monitor(spec, registry, store, Path(self.cache_dir))
        finally:
            store.close()

    def record(self, row: dict) -> None:
        log = MonitoringLog(self.store_url)
        try:
            log.record(row)
        finally:
            log.close()


@dg.resource(
    config_schema={**CONFIG_SCHEMA, "artifact_location": dg.Field(str, description="root for run artifacts")},
    description="dagster-mlflow tracking: one MLflow run per Dagster run, tagged with its id.",
)
def mlflow_tracking(context) -> MlflowTracking:
    return MlflowTracking(context)
