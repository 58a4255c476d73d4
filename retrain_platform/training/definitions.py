"""Training: ingest -> validated features -> candidate -> evaluation -> promotion, and rollback."""

import dagster as dg

from retrain_platform.settings import Settings

from .jobs import RETRAIN_ASSETS, reevaluate_job, retrain_job
from .promotion import rollback_job
from .resources import mlflow_tracking


def training_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=RETRAIN_ASSETS,
        jobs=[retrain_job, reevaluate_job, rollback_job],
        resources={
            "mlflow_tracking": mlflow_tracking.configured(
                {
                    "experiment_name": f"retrain-{settings.dataset}",
                    "mlflow_tracking_uri": settings.tracking_uri,
                    "artifact_location": settings.artifact_root,
                }
            ),
        },
    )
