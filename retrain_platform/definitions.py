"""The one place that assembles Dagster: assets, checks, jobs, sensors, schedules and resources."""

import json

import dagster as dg

from retrain_platform.assets.promotion import rollback_job
from retrain_platform.core.decisions import RetrainPolicy
from retrain_platform.core.gates import LABEL_COVERAGE_DAYS, GateConfig
from retrain_platform.jobs import (
    MONITORING_ASSETS,
    RETRAIN_ASSETS,
    monitor_job,
    retrain_job,
    retrain_run_config,
)
from retrain_platform.resources import (
    DatasetResource,
    DecisionsResource,
    LabelledSource,
    MonitoringResource,
    RegistryResource,
    mlflow_tracking,
)
from retrain_platform.schedules import build_schedules
from retrain_platform.sensors.alerts import build_failure_sensor
from retrain_platform.sensors.decision_files import build_decision_sensor
from retrain_platform.sensors.drift import build_drift_sensor
from retrain_platform.settings import Settings


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
        "decisions": DecisionsResource(
            folder=str(settings.decisions_dir),
            cooldown_hours=settings.retrain_cooldown_hours,
            max_per_week=settings.max_retrains_per_week,
        ),
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.io_storage_dir)),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    policy = RetrainPolicy(settings.retrain_cooldown_hours, settings.max_retrains_per_week)
    gates = json.loads(settings.retrain_gates or "{}")
    return dg.Definitions(
        assets=[*RETRAIN_ASSETS, *MONITORING_ASSETS],
        jobs=[retrain_job, monitor_job, rollback_job],
        sensors=[
            build_drift_sensor(settings.drift_sensor_seconds, settings.drift_min_new_predictions,
                               settings.drift_window_rows, targets=MONITORING_ASSETS, policy=policy,
                               repeat_after_hours=settings.drift_report_repeat_hours,
                               min_label_coverage=gates.get("min_label_coverage", GateConfig.min_label_coverage),
                               label_coverage_days=gates.get("label_coverage_days", LABEL_COVERAGE_DAYS),
                               min_new_label_share=settings.retrain_min_new_label_share),
            build_decision_sensor(settings.decisions_dir, settings.decision_sensor_seconds, policy,
                                  retrain_run_config(settings.retrain_window_days, settings.retrain_gates),
                                  dataset=settings.dataset),
            build_failure_sensor(settings.home_dir / "alerts.jsonl", settings.alert_webhook_url),
        ],
        schedules=build_schedules(retrain_run_config(settings.retrain_window_days, settings.retrain_gates),
                                  policy, settings.decisions_dir),
        resources=resources(settings),
        # Steps share one process: the multiprocess executor costs seconds per step here and the
        # stages are sequential anyway.
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())
