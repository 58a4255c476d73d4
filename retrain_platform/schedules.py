"""Schedules: a weekly retrain whatever the monitors say, and a daily monitoring run."""

import dagster as dg

from retrain_platform.jobs import (
    TRIGGER_TAG,
    monitor_job,
    retrain_job,
)


def build_schedules(retrain_config: dict) -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name="weekly_retrain", cron_schedule="0 3 * * 1", job=retrain_job,
            run_config=retrain_config, tags={TRIGGER_TAG: "schedule"},
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Retrain every Monday at 03:00 on the recent window; the gates still decide.",
        ),
        dg.ScheduleDefinition(
            name="daily_monitoring", cron_schedule="0 6 * * *", job=monitor_job, tags={TRIGGER_TAG: "schedule"},
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Drift report and retraining decision every day at 06:00.",
        ),
    ]  # fmt: skip
