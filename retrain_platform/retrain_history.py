"""When the platform last retrained, read from the Dagster instance.

A run launched for a decision carries when the decision was taken, on the platform clock (in a
replay, the simulated date); any other retrain run counts at the time it was created.
"""

from datetime import datetime

import dagster as dg

RETRAIN_JOB = "retrain"
DECISION_DATE_TAG = "retrain_platform/decision_date"


def recent_retrains(instance: dg.DagsterInstance, limit: int = 50) -> list[datetime]:
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=RETRAIN_JOB), limit=limit)
    times = []
    for record in records:
        tagged = record.dagster_run.tags.get(DECISION_DATE_TAG)
        times.append(datetime.fromisoformat(tagged) if tagged else record.create_timestamp)
    return times
