"""Retrain runs on the Dagster instance: the request for one, and when the platform last retrained.

A run launched for a decision carries when the decision was taken, on the platform clock (in a
replay, the simulated date); any other retrain run counts at the time it was created.
"""

from datetime import datetime

import dagster as dg

from retrain_platform.core.decisions import RetrainingDecision
from retrain_platform.names import DECISION_DATE_TAG, DECISION_TAG, FORCE_TAG, REASON_TAG, RETRAIN_JOB, TRIGGER_TAG


def retrain_request(decision: RetrainingDecision, taken_at: datetime, run_config: dict) -> dg.RunRequest:
    """The retrain run for an approved decision. `DECISION_DATE_TAG` is when it was taken (the
    platform clock's time, simulated in a replay): the policy counts the run at that time, whatever
    date the file claims, so an old or future date cannot dodge the weekly limit."""
    return dg.RunRequest(
        run_key=decision.decision_id,  # a decision launches at most one run, ever
        run_config=run_config,
        tags={
            TRIGGER_TAG: decision.trigger,
            DECISION_TAG: decision.decision_id,
            DECISION_DATE_TAG: taken_at.isoformat(),
            REASON_TAG: decision.reason[:900],
            **({FORCE_TAG: "true"} if decision.force else {}),
        },
    )


def recent_retrains(instance: dg.DagsterInstance, job_name: str = RETRAIN_JOB, limit: int = 50) -> list[datetime]:
    """When the retrain job `job_name` (a dataset's own) last ran."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name), limit=limit)
    times = []
    for record in records:
        tagged = record.dagster_run.tags.get(DECISION_DATE_TAG)
        times.append(datetime.fromisoformat(tagged) if tagged else record.create_timestamp)
    return times


def launched_for(instance: dg.DagsterInstance, decision_id: str) -> bool:
    """Whether the instance holds a run launched for this decision."""
    return bool(instance.get_run_records(filters=dg.RunsFilter(tags={DECISION_TAG: decision_id}), limit=1))
