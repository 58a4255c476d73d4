"""Schedules: a weekly retrain whatever the monitors say, and a daily monitoring run.

The weekly retrain goes through the same policy as every other automatic retrain: a retrain in the
last `cooldown_hours` makes it redundant, and it never exceeds the weekly limit. When a decisions
folder is given, its decision (launched or not, and why) is archived there beside the others, so
the archive is the one record of what the platform decided. The Materialize button (and a manual
decision with `force`) is the way around the cooldown.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg

from retrain_platform import clock
from retrain_platform.core.decisions import RetrainingDecision, RetrainPolicy, apply_policy
from retrain_platform.decision_files import DecisionFolder
from retrain_platform.jobs import TRIGGER_TAG, monitor_job, retrain_job
from retrain_platform.resources import DatasetResource, RegistryResource
from retrain_platform.retrain_history import recent_retrains
from retrain_platform.sensors.decision_files import retrain_request

WEEKLY_CRON = "0 3 * * 1"  # Mondays 03:00
DAILY_CRON = "0 6 * * *"  # every day 06:00
TIMEZONE = "UTC"


def build_schedules(
    retrain_config: dict, policy: RetrainPolicy | None = None, decisions_dir: Path | None = None
) -> list[dg.ScheduleDefinition]:
    policy = policy or RetrainPolicy()

    @dg.schedule(name="weekly_retrain", cron_schedule=WEEKLY_CRON, job=retrain_job, execution_timezone=TIMEZONE,
                 default_status=dg.DefaultScheduleStatus.RUNNING)  # fmt: skip
    def weekly_retrain(context: dg.ScheduleEvaluationContext):
        """Retrain every Monday at 03:00 on the recent window (unless a retrain ran within the
        cooldown or the weekly limit is reached); the gates still decide what is promoted."""
        now = clock.now()
        tick = context.scheduled_execution_time or now
        wish = RetrainingDecision(
            decision_date=now, retrain=True, trigger="schedule", source="schedule weekly_retrain",
            reason=f"weekly retrain ({WEEKLY_CRON} {TIMEZONE})",
            # One id per tick: a tick evaluated again asks for the same run, which Dagster launches once.
            decision_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"retrain_platform/weekly_retrain/{tick.isoformat()}")),
        )  # fmt: skip
        decision = apply_policy(wish, recent_retrains(context.instance), now, policy)
        request = retrain_request(decision, now, retrain_config) if decision.retrain else None
        if decisions_dir is not None:
            folder, name = DecisionFolder(decisions_dir), f"{tick:%Y%m%dT%H%M%S}-schedule-{decision.decision_id[:8]}"
            if not folder.archive.is_dir() or not any(folder.archive.glob(f"{name}.*")):  # once per tick
                folder.keep(decision, name, {"taken_at": now.isoformat(), "taken_by": "weekly_retrain",
                                             "run_key": request.run_key if request else None})  # fmt: skip
        return request or dg.SkipReason(decision.reason)

    @dg.schedule(name="daily_monitoring", cron_schedule=DAILY_CRON, job=monitor_job, execution_timezone=TIMEZONE,
                 default_status=dg.DefaultScheduleStatus.RUNNING)  # fmt: skip
    def daily_monitoring(context: dg.ScheduleEvaluationContext, dataset: DatasetResource, registry: RegistryResource):
        """Drift report and retraining decision every day at 06:00, once there is a production model."""
        version = registry.for_dataset(dataset.spec).production_version()
        if version is None:
            return dg.SkipReason("no production model yet: nothing to monitor")
        return dg.RunRequest(tags={TRIGGER_TAG: "schedule", "retrain_platform/model_version": str(version)})

    return [weekly_retrain, daily_monitoring]
