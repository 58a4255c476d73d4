"""Monitoring: the drift report and retraining decision, the drift sensor, the daily run."""

import dagster as dg

from retrain_platform.resources import Dataset
from retrain_platform.settings import Settings

from .challenger import build_challenger_sensor
from .health import build_model_health, build_model_health_sensor
from .jobs import MONITORING_ASSETS, monitor_job
from .resources import MonitoringResource
from .schedules import build_daily_monitoring
from .sensors import build_drift_sensor


def monitoring_definitions(settings: Settings, dataset: Dataset) -> dg.Definitions:
    assets = dataset.own(MONITORING_ASSETS)
    model_health = build_model_health(dataset, settings.health_start_date)
    return dg.Definitions(
        assets=[*assets, model_health],
        jobs=[monitor_job(dataset, assets)],
        sensors=[build_drift_sensor(dataset, assets, settings.drift_sensor_seconds),
                 build_challenger_sensor(dataset, settings.drift_sensor_seconds),
                 build_model_health_sensor(dataset, model_health, settings.health_sensor_seconds)],  # fmt: skip
        schedules=[build_daily_monitoring(dataset)],
    )


def monitoring_resources(settings: Settings) -> dict:
    """The default dataset's; another's are derived from them (`MonitoringResource.in_scope`)."""
    return {
        "monitoring": MonitoringResource(
            store_url=settings.store_url,
            cache_dir=str(settings.cache_dir),
            reports_dir=str(settings.reports_dir),
            window_rows=settings.drift_window_rows,
            min_new_predictions=settings.drift_min_new_predictions,
            repeat_after_hours=settings.drift_report_repeat_hours,
            min_new_label_share=settings.retrain_min_new_label_share,
            false_alarm_rate=settings.drift_false_alarm_rate,
            min_importance=settings.drift_min_importance,
            drift_retrains_alone=settings.drift_retrains_alone,
            max_model_age_days=settings.retrain_max_model_age_days,
        ),
    }
