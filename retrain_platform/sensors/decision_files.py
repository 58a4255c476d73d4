"""The decision-file sensor: takes each file in the decisions inbox exactly once."""

import json
from pathlib import Path

import dagster as dg

from retrain_platform import clock
from retrain_platform.core.decisions import DecisionError, RetrainPolicy, apply_policy
from retrain_platform.decision_files import DecisionFolder
from retrain_platform.jobs import (
    DECISION_DATE_TAG,
    DECISION_TAG,
    TRIGGER_TAG,
    retrain_job,
)
from retrain_platform.retrain_history import recent_retrains


def build_decision_sensor(folder: Path, interval_seconds: int, policy: RetrainPolicy, run_config: dict) -> dg.SensorDefinition:
    @dg.sensor(
        name="decision_file_sensor",
        job=retrain_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def decision_file_sensor(context: dg.SensorEvaluationContext):
        """Reads each decision file in the inbox once: applies the cooldown and weekly limit,
        launches the retrain job when the decision stands, archives the file with the outcome,
        and moves an invalid file to rejected/ with its error."""
        decisions = DecisionFolder(folder)
        recent = recent_retrains(context.instance)
        requests, notes = [], []
        for path in decisions.pending():
            try:
                wish = decisions.read(path)
            except DecisionError as err:
                decisions.reject(path, err)
                notes.append(f"rejected {path.name}: {err}")
                continue
            decision = apply_policy(wish, recent, clock.now(), policy)
            decisions.archive_as(path, decision)
            notes.append(f"{path.name}: {decision.reason}")
            if decision.retrain:
                recent.append(decision.decision_date)  # the next file of this tick sees it
                requests.append(dg.RunRequest(
                    run_key=decision.decision_id,  # a decision launches at most one run, ever
                    run_config=run_config,
                    tags={TRIGGER_TAG: decision.trigger, DECISION_TAG: decision.decision_id,
                          DECISION_DATE_TAG: decision.decision_date.isoformat()},
                ))  # fmt: skip
        if not notes:
            return dg.SkipReason("no decision files in the inbox")
        for note in notes:
            context.log.info(note)
        cursor = json.dumps({"last": notes[-1][:200], "cursor_before": context.cursor})[:2000]
        return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "; ".join(notes)[:1000],
                               cursor=cursor)  # fmt: skip

    return decision_file_sensor
