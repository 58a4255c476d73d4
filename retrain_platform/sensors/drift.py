"""The drift sensor: watches served traffic and asks for a report and a decision when it drifts."""

import json

import dagster as dg

from retrain_platform.jobs import TRIGGER_TAG
from retrain_platform.resources import (
    DatasetResource,
    MonitoringResource,
    RegistryResource,
)


def build_drift_sensor(interval_seconds: int, min_new: int, window_rows: int, targets: list) -> dg.SensorDefinition:
    @dg.sensor(
        name="drift_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=targets,
    )
    def drift_sensor(
        context: dg.SensorEvaluationContext,
        dataset: DatasetResource,
        registry: RegistryResource,
        monitoring: MonitoringResource,
    ):
        """Compares the newest served traffic with the production model's reference (fast engine);
        past the thresholds, or when realised performance falls below the floor, it requests the
        drift report and a retraining decision."""
        spec = dataset.spec
        reg = registry.for_dataset(spec)
        version = reg.production_version()
        if version is None:
            return dg.SkipReason("no production model yet")
        cursor = json.loads(context.cursor or "{}")
        with monitoring.monitor(spec, reg) as monitor:
            served = monitor.store.count_predictions()
            fresh = served - cursor.get("served", 0)
            if fresh < min_new:
                return dg.SkipReason(f"{fresh} new predictions since the last check; checking every {min_new}")
            check = monitor.check(version, window_rows)
            realised = monitor.realised(version, window_rows)
        cursor = json.dumps({"served": served, "version": version})
        if check is None:
            return dg.SensorResult(skip_reason=f"version {version} has served too few predictions", cursor=cursor)
        monitoring.record(check.record("drift_sensor", spec))
        reasons, trigger = [], None
        if check.assessment.retrain:
            trigger, reasons = "drift", [check.assessment.summary()]
        if realised is not None and realised["auc"] < spec.auc_floor:
            trigger = trigger or "performance"
            reasons.append(f"realised AUC {realised['auc']:.3f} < floor {spec.auc_floor} on {int(realised['rows'])} labels")
        if trigger is None:
            return dg.SensorResult(skip_reason=check.assessment.summary(), cursor=cursor)
        context.log.info(f"version {version}: {'; '.join(reasons)}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{trigger}:v{version}:{served}",
                    tags={TRIGGER_TAG: trigger, "retrain_platform/reason": "; ".join(reasons)[:900]},
                )
            ],
            cursor=cursor,
        )

    return drift_sensor
