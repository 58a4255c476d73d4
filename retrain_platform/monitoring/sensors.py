"""The drift sensor: watches served traffic and asks for a report and a decision when it drifts."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision, RetrainPolicy, apply_policy
from retrain_platform.core.gates import GateConfig, dataset_gates
from retrain_platform.core.monitoring import retrain_reasons
from retrain_platform.decisions.resources import DecisionsResource
from retrain_platform.decisions.runs import recent_retrains
from retrain_platform.names import REASON_TAG, RETRAIN_JOB, TRIGGER_TAG
from retrain_platform.resources import Dataset, LabelledSource, RegistryResource

from .resources import MonitoringResource


def build_drift_sensor(dataset: Dataset, assets: list[dg.AssetsDefinition], interval_seconds: int) -> dg.SensorDefinition:
    """Every check is recorded in the monitoring log; a report and a decision are asked for only
    when they can lead somewhere. Not while the retrain policy would refuse a retrain (cooldown,
    weekly limit), not while fewer than the gates' `min_label_coverage` of the last
    `label_coverage_days` days' predictions have labels, not until the labels logged since the
    newest model was registered (the production one, or a candidate the gates rejected since)
    reach `min_new_label_share` of the rows it learned from (both when retrains learn from the
    log: a retrain with little new evidence makes the same model again, and a rejected one would
    be rejected again), and, while the same production version stays flagged, at most every
    `repeat_after_hours` (platform clock): drift that persists is one finding, not an alarm per
    tick. The skip reason says which of these held the sensor back."""

    @dg.sensor(
        name=dataset.scoped("drift_sensor"),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=assets,  # the dataset's own drift_report and retraining_decision
    )
    def drift_sensor(
        context: dg.SensorEvaluationContext,
        registry: RegistryResource,
        monitoring: MonitoringResource,
        source: LabelledSource,
        decisions: DecisionsResource,
    ):
        """Checks the newest served traffic of the production model (calibrated drift, expected,
        realised and live performance); when that asks for a retrain, it requests the drift report
        and a retraining decision."""
        spec = dataset.spec
        monitoring, decisions = monitoring.in_scope(dataset.scope), decisions.in_scope(dataset.scope)
        source = source.of(dataset)
        reg = registry.for_dataset(spec)
        version = reg.production_version()
        if version is None:
            return dg.SkipReason("no production model yet")
        cursor = json.loads(context.cursor or "{}")
        with monitoring.monitor(spec, reg) as monitor:
            # Only the rows after the newest time seen are read, at most as many as a check waits for:
            # a tick costs the same whatever the history. (A row shipped late, older than that time,
            # is not counted as new; it still lands in the next check's window.)
            seen = datetime.fromisoformat(cursor["newest"]) if cursor.get("newest") else None
            times = monitor.store.newest_times(monitoring.min_new_predictions, after=seen)
            fresh, newest = len(times), times[0].isoformat() if times else cursor.get("newest")
            if fresh < monitoring.min_new_predictions:
                return dg.SkipReason(f"{fresh} new predictions since the last check; checking every {monitoring.min_new_predictions}")
            check = monitor.check(version, monitoring.window_rows, monitoring.policy())
            evidence = monitor.evidence(check, version, monitoring.window_rows, age=monitoring.max_model_age_days > 0)
        reported = cursor.get("reported", {}) if cursor.get("version") == version else {}
        state = {"newest": newest, "version": version, "reported": reported}
        if check is None:
            return dg.SensorResult(skip_reason=f"version {version} has served too few predictions", cursor=json.dumps(state))
        monitoring.record(check.record("drift_sensor", spec, evidence))
        trigger, reasons = retrain_reasons(evidence, spec.auc_floor, monitoring.drift_retrains_alone, monitoring.max_model_age_days)
        if trigger is None:
            return dg.SensorResult(skip_reason="; ".join(reasons) or check.assessment.summary(), cursor=json.dumps(state))
        waiting = reg.waiting_challenger() if trigger == "challenger" else None
        if waiting:  # a retrain would replace the very challenger the evidence favours
            return dg.SensorResult(skip_reason=f"version {version}: {'; '.join(reasons)}; challenger v{waiting} "
                                   "waits in shadow and the challenger sensor promotes it", cursor=json.dumps(state))  # fmt: skip
        now = clock.now()
        held_back = (
            _held_back(context.instance, dataset.scoped(RETRAIN_JOB), decisions.policy(), now, reported,
                       monitoring.repeat_after_hours)
            or _labels_missing(source, dataset_gates(spec.gates, decisions.gates()))
            # A model past its age is due whatever it learned since, whichever finding came first; a
            # finding alone waits for new evidence.
            or (None if evidence.past_age(monitoring.max_model_age_days)
                else _too_little_new_evidence(source, reg, monitoring.min_new_label_share))
        )
        if held_back:
            return dg.SensorResult(skip_reason=f"version {version}: {'; '.join(reasons)}; {held_back}", cursor=json.dumps(state))
        state["reported"] = {"at": now.isoformat(), "trigger": trigger}
        context.log.info(f"version {version}: {'; '.join(reasons)}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{trigger}:v{version}:{newest}",
                    tags={TRIGGER_TAG: trigger, REASON_TAG: "; ".join(reasons)[:900]},
                )
            ],
            cursor=json.dumps(state),
        )

    return drift_sensor


def _labels_missing(source: LabelledSource, gates: GateConfig) -> str | None:
    """Why the labels cannot support a retrain yet, or None. Measured as the label_coverage gate
    measures it, so that no retrain is launched only to be rejected by that gate."""
    minimum, days = gates.min_label_coverage, gates.label_coverage_days
    coverage = source.label_coverage(since=datetime.now(UTC) - timedelta(days=days))
    if coverage is None or coverage >= minimum:
        return None
    return f"waiting for labels: {coverage:.0%} of the last {days:g} days' predictions are labelled (retrains need {minimum:.0%})"


def _held_back(instance, retrain_job: str, policy: RetrainPolicy, now: datetime, reported: dict,
               repeat_after_hours: float) -> str | None:  # fmt: skip
    """Why no report and decision are asked for now, or None: a retrain would be refused, or this
    finding was reported a short while ago."""
    wish = RetrainingDecision(decision_date=now, retrain=True, reason="drift sensor", trigger="drift")
    verdict = apply_policy(wish, recent_retrains(instance, retrain_job), now, policy)
    if not verdict.retrain:
        return verdict.reason.removeprefix(wish.reason + "; ")
    if reported:
        again = datetime.fromisoformat(reported["at"]) + timedelta(hours=repeat_after_hours)
        if now < again:
            return f"already reported at {reported['at'][:16]}; next report from {again.isoformat()[:16]}"
    return None


def _too_little_new_evidence(source: LabelledSource, registry, share: float) -> str | None:
    """Why a retrain would learn too little that the newest model did not, or None."""
    if share <= 0 or not source.store_url:  # retrains do not learn from the log: nothing to count
        return None
    version = registry.newest_version()
    info = registry.version_info(version)
    counts = source.label_counts(since=info.created_at) if info.created_at else None
    trained_on = registry.window_rows(info) if counts else None
    if not trained_on or counts[1] >= share * trained_on:
        return None
    return (f"waiting for new evidence: {counts[1]:,} predictions labelled since version {version} was trained; "
            f"a retrain needs {share * trained_on:,.0f} ({share:.0%} of the {trained_on:,} rows it learned from)")  # fmt: skip
