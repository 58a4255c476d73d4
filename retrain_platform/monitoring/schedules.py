"""A daily monitoring run, whatever the drift sensor saw."""

import dagster as dg

from retrain_platform.names import MODEL_VERSION_TAG, MONITOR_JOB, TRIGGER_TAG
from retrain_platform.resources import Dataset, RegistryResource

DAILY_CRON = "0 6 * * *"  # every day 06:00
TIMEZONE = "UTC"


def build_daily_monitoring(dataset: Dataset) -> dg.ScheduleDefinition:
    @dg.schedule(name=dataset.scoped("daily_monitoring"), cron_schedule=DAILY_CRON, job_name=dataset.scoped(MONITOR_JOB),
                 execution_timezone=TIMEZONE, default_status=dg.DefaultScheduleStatus.RUNNING)  # fmt: skip
    def daily_monitoring(context: dg.ScheduleEvaluationContext, registry: RegistryResource):
        """Drift report and retraining decision every day at 06:00, once there is a production model."""
        version = registry.for_dataset(dataset.spec).production_version()
        if version is None:
            return dg.SkipReason("no production model yet: nothing to monitor")
        return dg.RunRequest(tags={TRIGGER_TAG: "schedule", MODEL_VERSION_TAG: str(version)})

    return daily_monitoring
