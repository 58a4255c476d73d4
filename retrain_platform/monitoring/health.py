"""Model health per day: a daily-partitioned asset, materialized again as a day's late labels arrive.

A day's partition holds that day's served traffic: its drift, the production model's expected AUC
on it, and, once labels come back, the realised AUC and the live comparison with the challenger.
The partitions view shows the model's health day by day; a backfill recomputes any range.
"""

import json
from datetime import timedelta

import dagster as dg

from retrain_platform.core import clock
from retrain_platform.resources import Dataset, LabelledSource, RegistryResource

from .resources import MonitoringResource

LABELS_ARRIVE_DAYS = 7  # a day's partition is refreshed while its labels may still be coming in


def build_model_health(dataset: Dataset, start_date: str) -> dg.AssetsDefinition:
    partitions = dg.DailyPartitionsDefinition(start_date=start_date, end_offset=1, timezone="UTC")

    @dg.asset(key=dataset.key("model_health"), group_name="monitoring", kinds={"pandas"}, partitions_def=partitions)
    def model_health(
        context: dg.AssetExecutionContext, registry: RegistryResource, monitoring: MonitoringResource
    ) -> dg.MaterializeResult:
        """One day of the production model's health: traffic, calibrated drift, expected and realised AUC."""
        start, end = context.partition_time_window
        spec, monitoring = dataset.spec, monitoring.in_scope(dataset.scope)
        with monitoring.monitor(spec, registry.for_dataset(spec)) as monitor:
            health = monitor.day(start, end, monitoring.window_rows, monitoring.policy())
        if health is None:
            return dg.MaterializeResult(metadata={"served": 0})
        return dg.MaterializeResult(metadata=health.metadata())

    return model_health


def build_model_health_sensor(dataset: Dataset, model_health: dg.AssetsDefinition,
                              interval_seconds: int) -> dg.SensorDefinition:  # fmt: skip
    @dg.sensor(name=dataset.scoped("model_health_sensor"), asset_selection=[model_health],
               minimum_interval_seconds=interval_seconds, default_status=dg.DefaultSensorStatus.RUNNING)  # fmt: skip
    def model_health_sensor(context: dg.SensorEvaluationContext, monitoring: MonitoringResource, source: LabelledSource):
        """Materializes a day's model health once the day is over, and again whenever more of its
        predictions have been labelled, for the days whose labels may still arrive. Each tick also
        keeps the prediction log: the coming days' partitions, and the retention."""
        monitoring, source = monitoring.in_scope(dataset.scope), source.of(dataset)
        source.keep_log()
        seen: dict[str, list[int]] = json.loads(context.cursor or "{}")
        today = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        keys = model_health.partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
        requests = []
        with monitoring.monitor_store() as store:
            for back in range(1, LABELS_ARRIVE_DAYS + 1):
                day = today - timedelta(days=back)
                key = day.strftime("%Y-%m-%d")
                if key not in keys:
                    continue
                counts = list(store.label_counts(day, day + timedelta(days=1)))
                if counts[0] and counts != seen.get(key):
                    requests.append(dg.RunRequest(partition_key=key, run_key=f"{key}:{counts[0]}:{counts[1]}"))
                    seen[key] = counts
        oldest = (today - timedelta(days=LABELS_ARRIVE_DAYS)).strftime("%Y-%m-%d")
        cursor = json.dumps({k: v for k, v in seen.items() if k >= oldest})
        return dg.SensorResult(run_requests=requests, cursor=cursor,
                               skip_reason=None if requests else "no day's traffic or labels changed")  # fmt: skip

    return model_health_sensor
