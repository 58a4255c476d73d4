"""The weekly retrain, whatever the monitors say.

It goes through the same policy as every other automatic retrain: a retrain in the last
`cooldown_hours` makes it redundant, and it never exceeds the weekly limit. Its decision (launched
or not, and why) is archived in the decisions folder beside the others, so the archive is the one
record of what the platform decided. The Materialize button (and a manual decision with `force`)
is the way around the cooldown.
"""

import uuid

import dagster as dg

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision, apply_policy
from retrain_platform.names import RETRAIN_JOB
from retrain_platform.resources import Dataset

from .resources import DecisionsResource
from .runs import recent_retrains, retrain_request

WEEKLY_CRON = "0 3 * * 1"  # Mondays 03:00
TIMEZONE = "UTC"


def build_weekly_retrain(dataset: Dataset) -> dg.ScheduleDefinition:
    name, job = dataset.scoped("weekly_retrain"), dataset.scoped(RETRAIN_JOB)

    @dg.schedule(name=name, cron_schedule=WEEKLY_CRON, job_name=job, execution_timezone=TIMEZONE,
                 default_status=dg.DefaultScheduleStatus.RUNNING)  # fmt: skip
    def weekly_retrain(context: dg.ScheduleEvaluationContext, decisions: DecisionsResource):
        """Retrain every Monday at 03:00 on the recent window (unless a retrain ran within the
        cooldown or the weekly limit is reached); the gates still decide what is promoted."""
        decisions = decisions.in_scope(dataset.scope)
        now = clock.now()
        tick = context.scheduled_execution_time or now
        wish = RetrainingDecision(
            decision_date=now, retrain=True, trigger="schedule", source=f"schedule {name}", dataset=dataset.name,
            reason=f"weekly retrain ({WEEKLY_CRON} {TIMEZONE})",
            # One id per tick: a tick evaluated again asks for the same run, which Dagster launches once.
            decision_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"retrain_platform/{name}/{tick.isoformat()}")),
        )  # fmt: skip
        decision = apply_policy(wish, recent_retrains(context.instance, job), now, decisions.policy())
        request = retrain_request(decision, now, decisions.run_config()) if decision.retrain else None
        folder, file = decisions.inbox(), f"{tick:%Y%m%dT%H%M%S}-schedule-{decision.decision_id[:8]}"
        if not folder.archive.is_dir() or not any(folder.archive.glob(f"{file}.*")):  # once per tick
            folder.keep(decision, file, {"taken_at": now.isoformat(), "taken_by": name,
                                         "run_key": request.run_key if request else None})  # fmt: skip
        return request or dg.SkipReason(decision.reason)

    return weekly_retrain
