"""Training's own resource: MLflow tracking, one MLflow run per Dagster run."""

import dagster as dg
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow

from retrain_platform.registry import ensure_experiment


def experiment_name(dataset: str) -> str:
    return f"retrain-{dataset}"


class _ExperimentOf:
    """The resource's init context with another experiment: one tracking resource serves every dataset."""

    def __init__(self, init_context, experiment: str):
        self._context = init_context
        self.resource_config = {**init_context.resource_config, "experiment_name": experiment}

    def __getattr__(self, name):
        return getattr(self._context, name)


class MlflowTracking:
    """dagster-mlflow's MlFlow tracker (one MLflow run per Dagster run, tagged with its id), started
    on first use: the in-process executor initialises every resource when a run starts, and a run
    that stops at a failed data check should leave no empty MLflow run behind."""

    def __init__(self, init_context):
        self._init_context = init_context
        self._tracker: MlFlow | None = None

    def start(self, experiment: str) -> MlFlow:
        """The tracker, its MLflow run in `experiment` (each dataset has its own)."""
        if self._tracker is None:
            context = _ExperimentOf(self._init_context, experiment)
            config = context.resource_config
            # dagster-mlflow calls mlflow.set_experiment, which would put artifacts under ./mlruns
            # in the working directory; create the experiment first with the platform's root.
            ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"], config["artifact_location"])
            self._tracker = MlFlow(context)
        return self._tracker


@dg.resource(
    config_schema={**CONFIG_SCHEMA, "artifact_location": dg.Field(str, description="root for run artifacts")},
    description="dagster-mlflow tracking: one MLflow run per Dagster run, tagged with its id.",
)
def mlflow_tracking(context) -> MlflowTracking:
    return MlflowTracking(context)
