"""The decision-file sensor: takes each file in the decisions inbox exactly once.

Exactly once rests on four things. A file taken leaves the inbox (to archive/ or rejected/), so the
inbox itself is the work still to do: a file dropped with an old modification time (`mv`, `cp -p`,
rsync) is still seen, which a cursor of the last (mtime, name) alone would skip forever. A file
that asks for a run leaves the inbox only once the instance holds that run: the tick that approves
it requests the run and remembers the decision in its cursor, and a later tick archives the file
when the run exists, or requests it again if the daemon died before launching it. The cursor keeps
the ids of recent decisions taken, and the instance knows every run launched for a decision (tag
`retrain_platform/decision_id`), so a copy of a decision already taken is archived as a duplicate
instead of claiming a retrain. And the run key is the decision id, which Dagster never launches
twice for this sensor.
"""


import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import dagster as dg

from retrain_platform.core import clock
from retrain_platform.core.decisions import RETRAINING, DecisionError, RetrainingDecision, apply_policy
from retrain_platform.names import RETRAIN_JOB
from retrain_platform.resources import Dataset

from .resources import DecisionsResource
from .runs import launched_for, recent_retrains, retrain_request

SENSOR_NAME = "decision_file_sensor"
MAX_FILES_PER_TICK = 100  # a tick stays short (sensor evaluations have a deadline); the rest waits a tick
SETTLE_SECONDS = 5.0  # an invalid file younger than this may still be being written: looked at again
TAKEN_IN_CURSOR = 500  # decision ids remembered in the cursor (the instance remembers launched ones forever)
LAUNCHING_IN_CURSOR = 500  # approved decisions whose run the instance did not show yet


def build_decision_sensor(dataset: Dataset, interval_seconds: int,
                          settle_seconds: float = SETTLE_SECONDS) -> dg.SensorDefinition:  # fmt: skip
    """Each dataset has its own inbox; a decision naming another dataset is archived, not acted on."""
    sensor_name, retrain_job = dataset.scoped(SENSOR_NAME), dataset.scoped(RETRAIN_JOB)

    @dg.sensor(
        name=sensor_name,
        job_name=retrain_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def decision_file_sensor(context: dg.SensorEvaluationContext, decisions: DecisionsResource):
        """Reads each decision file in the inbox once: applies the cooldown and weekly limit,
        launches the retrain job when the decision stands, archives the file with the outcome,
        and moves an invalid file to rejected/ with its error."""
        decisions = decisions.in_scope(dataset.scope)
        policy, run_config, dataset_name = decisions.policy(), decisions.run_config(), dataset.name
        folder = decisions.inbox()
        files = folder.pending()
        if not files:
            return dg.SkipReason("no decision files in the inbox")
        state = _cursor(context.cursor)
        taken: list[str] = state["taken"]
        launching: dict[str, dict] = state["launching"]
        now = clock.now()
        recent = recent_retrains(context.instance, retrain_job)
        # Approved on an earlier tick: does the instance hold their runs yet? Asked once per tick.
        launched = {decision_id: launched_for(context.instance, decision_id) for decision_id in launching}
        # Approved but not launched (the daemon stopped in between): they count for the policy too.
        recent += [datetime.fromisoformat(waiting["outcome"]["taken_at"]) for decision_id, waiting in launching.items()
                   if not launched[decision_id]]  # fmt: skip
        requests: list[dg.RunRequest] = []
        notes: list[str] = []

        def take(path: Path) -> str:
            try:
                wish = folder.read(path)
            except DecisionError as err:
                if folder.age_seconds(path) < settle_seconds:
                    return f"{path.name}: not a valid decision yet ({err}); looking again next tick"
                folder.reject(path, err)
                return f"rejected {path.name}: {err}"
            waiting = launching.get(wish.decision_id)
            if waiting is not None:
                return follow_up(path, RetrainingDecision.from_json(waiting["decision"]), waiting["outcome"])
            status = None
            if wish.decision_id in taken or launched_for(context.instance, wish.decision_id):
                status = "duplicate"
                decision = replace(wish, retrain=False, reason=f"{wish.reason.removesuffix(RETRAINING)}; not retraining: "
                                   f"decision {wish.decision_id} was taken before (a copy of a file already acted on)")  # fmt: skip
            elif wish.retrain and wish.dataset and wish.dataset != dataset_name:
                decision = replace(wish, retrain=False, reason=f"{wish.reason}; not retraining: "
                                   f"this platform retrains {dataset_name!r}, the decision is for {wish.dataset!r}")  # fmt: skip
            else:
                decision = apply_policy(wish, recent, now, policy)
            request = retrain_request(decision, now, run_config) if decision.retrain else None
            outcome = {
                "status": status,
                "taken_at": now.isoformat(),
                "taken_by": sensor_name,
                "run_key": request.run_key if request else None,
                "asked": {"retrain": wish.retrain, "reason": wish.reason},
            }
            state["last"] = {"file": path.name, "taken_at": now.isoformat()}
            if request:
                requests.append(request)
                recent.append(now)  # the next file of this tick sees this retrain
                launching[decision.decision_id] = {"decision": decision.to_json(), "outcome": outcome}
                return f"{path.name}: {decision.reason}; run requested, the file is archived once it is launched"
            archived = folder.archive_as(path, decision, outcome)
            taken.append(decision.decision_id)
            return f"{path.name} -> {archived.parent.name}/{archived.name}: {decision.reason}"

        def follow_up(path: Path, decision: RetrainingDecision, outcome: dict) -> str:
            """An approved decision from an earlier tick: archived if its run exists, asked for
            again (same run key, so never twice) if the daemon stopped before launching it."""
            if launched[decision.decision_id]:
                archived = folder.archive_as(path, decision, outcome)
                del launching[decision.decision_id]
                taken.append(decision.decision_id)
                return f"{path.name} -> {archived.parent.name}/{archived.name}: its run was launched"
            requests.append(retrain_request(decision, datetime.fromisoformat(outcome["taken_at"]), run_config))
            return f"{path.name}: its run was not launched yet; asking again under the same run key"

        for path in files[:MAX_FILES_PER_TICK]:
            try:
                notes.append(take(path))
            except OSError as err:  # e.g. permissions: leave the file, keep the runs of the others
                notes.append(f"{path.name}: left in the inbox, {type(err).__name__}: {err}")
                context.log.warning(notes[-1])
        if len(files) > MAX_FILES_PER_TICK:
            notes.append(f"{len(files) - MAX_FILES_PER_TICK} more files next tick")
        for note in notes:
            context.log.info(note)
        state["taken"] = taken[-TAKEN_IN_CURSOR:]
        state["launching"] = dict(list(launching.items())[-LAUNCHING_IN_CURSOR:])
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None if requests else "; ".join(notes)[:2000],
            cursor=json.dumps(state),
        )

    return decision_file_sensor


def _cursor(text: str | None) -> dict:
    try:
        state = json.loads(text) if text else {}
    except json.JSONDecodeError:
        state = {}
    state = state if isinstance(state, dict) else {}
    launching = state.get("launching")
    return {
        "taken": [i for i in state.get("taken", []) if isinstance(i, str)],
        "launching": launching if isinstance(launching, dict) else {},
        "last": state.get("last"),
    }
