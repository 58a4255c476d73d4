"""Dagster resources: everything that differs between a laptop and a deployment lives here."""

import dagster as dg
import pandas as pd
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow

from retrain_platform.datasets import DatasetSpec, get_spec
from retrain_platform.registry import ModelRegistry, ensure_experiment


class DatasetResource(dg.ConfigurableResource):
    """Which dataset spec the graph runs on."""

    name: str = "flights"

    @property
    def spec(self) -> DatasetSpec:
        return get_spec(self.name)


class HistorySource(dg.ConfigurableResource):
    """The labelled history a run reads: the vendored data, or a Parquet file given by path."""

    path: str = ""

    def read(self, spec: DatasetSpec) -> pd.DataFrame:
        return pd.read_parquet(self.path) if self.path else spec.load()

    def label_coverage(self, spec: DatasetSpec) -> float | None:
        """None: every history row is labelled, and none of the labels came from the prediction log."""
        return None


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


@dg.resource(
    config_schema={**CONFIG_SCHEMA, "artifact_location": dg.Field(str, description="root for run artifacts")},
    description="dagster-mlflow tracking: one MLflow run per Dagster run, tagged with its id.",
)
def mlflow_tracking(context) -> MlflowTracking:
    return MlflowTracking(context)
