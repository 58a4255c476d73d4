"""The one place that assembles Dagster: assets, checks, jobs and resources."""

import dagster as dg

from retrain_platform.assets.evaluation import evaluation_report
from retrain_platform.assets.ingest import raw_data, validated_features
from retrain_platform.assets.monitoring import drift_report
from retrain_platform.assets.promotion import production_model, rollback_job
from retrain_platform.assets.training import candidate_model, reference_data
from retrain_platform.resources import (
    DatasetResource,
    LabelledSource,
    MonitoringResource,
    RegistryResource,
    mlflow_tracking,
)
from retrain_platform.sensors.drift import build_drift_sensor
from retrain_platform.settings import Settings

RETRAIN_ASSETS = [raw_data, validated_features, candidate_model, reference_data, evaluation_report, production_model]
MONITORING_ASSETS = [drift_report]
# One promotion at a time: the instance limits runs with this tag to one (see dagster.yaml).
PROMOTION_TAG = {"retrain_platform/promotion": "exclusive"}

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Ingest, validate, train, evaluate and promote if every gate passes.",
    tags=PROMOTION_TAG,
)


def resources(settings: Settings) -> dict:
    spec_name = settings.dataset
    return {
        "dataset": DatasetResource(name=spec_name),
        "source": LabelledSource(
            history_path=settings.history_path,
            history_until=settings.history_until,
            store_url=settings.store_url if settings.train_on_prediction_log else "",
        ),
        "registry": RegistryResource(
            tracking_uri=settings.tracking_uri, artifact_root=settings.artifact_root, ui_url=settings.mlflow_ui_url
        ),
        "mlflow_tracking": mlflow_tracking.configured(
            {
                "experiment_name": f"retrain-{spec_name}",
                "mlflow_tracking_uri": settings.tracking_uri,
                "artifact_location": settings.artifact_root,
            }
        ),
        "monitoring": MonitoringResource(
            store_url=settings.store_url,
            cache_dir=str(settings.home_dir / "cache"),
            reports_dir=str(settings.reports_dir),
        ),
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.io_storage_dir)),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[*RETRAIN_ASSETS, *MONITORING_ASSETS],
        jobs=[retrain_job, rollback_job],
        sensors=[
            build_drift_sensor(settings.drift_sensor_seconds, settings.drift_min_new_predictions,
                               settings.drift_window_rows, targets=MONITORING_ASSETS),
        ],  # fmt: skip
        resources=resources(settings),
        # Steps share one process: the multiprocess executor costs seconds per step here and the
        # stages are sequential anyway.
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())
