"""Training: ingest -> validated features -> candidate -> evaluation -> promotion, and rollback."""

import dagster as dg

from retrain_platform.resources import Dataset
from retrain_platform.settings import Settings

from .jobs import RETRAIN_ASSETS, training_jobs
from .promotion import build_rollback_job
from .resources import experiment_name, mlflow_tracking


def training_definitions(dataset: Dataset) -> dg.Definitions:
    assets = dataset.own(RETRAIN_ASSETS)
    return dg.Definitions(assets=assets, jobs=[*training_jobs(dataset, assets), build_rollback_job(dataset)])


def training_resources(settings: Settings) -> dict:
    # Each run tracks in its dataset's own experiment (candidate_model); this one is the default's.
    return {
        "mlflow_tracking": mlflow_tracking.configured(
            {
                "experiment_name": experiment_name(settings.dataset),
                "mlflow_tracking_uri": settings.tracking_uri,
                "artifact_location": settings.artifact_root,
            }
        ),
    }
