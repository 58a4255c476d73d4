"""The challenger sensor: a candidate that passed offline but waits in shadow is evaluated again
once its live evidence (or the end of the cooldown) can decide it: promoted early when the
evidence favours it, rejected when the gates require that evidence and it favours the champion."""

import dagster as dg

from retrain_platform.core.gates import dataset_gates, reevaluation_due
from retrain_platform.decisions.resources import DecisionsResource
from retrain_platform.names import CHALLENGER_TAG, REASON_TAG, REEVALUATE_JOB, TRIGGER_TAG
from retrain_platform.resources import Dataset, LabelledSource, RegistryResource


def build_challenger_sensor(dataset: Dataset, interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=dataset.scoped("challenger_sensor"),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        job_name=dataset.scoped(REEVALUATE_JOB),
    )
    def challenger_sensor(registry: RegistryResource, source: LabelledSource, decisions: DecisionsResource):
        """Compares the waiting challenger's shadow scores with the champion's on the labelled
        traffic both scored, and asks for its evaluation again when that can decide it."""
        reg = registry.for_dataset(dataset.spec)
        challenger, champion = reg.waiting_challenger(), reg.production_version()
        if challenger is None or champion is None:
            return dg.SkipReason("no challenger waits in shadow")
        gates = dataset_gates(dataset.spec.gates, decisions.gates())  # as the re-evaluation will apply them
        live = source.of(dataset).live_comparison(champion, challenger)
        days = reg.days_since_promotion(champion)
        due = reevaluation_due(live, gates, cooldown_over=days is None or days >= gates.cooldown_days)
        if due is None:
            rows = f"{live.rows:,} labelled shadow rows" if live else "no labelled shadow rows"
            return dg.SkipReason(f"challenger v{challenger} waits in shadow ({rows}; {live.verdict if live else 'no verdict'})")
        key, reason = due
        return dg.RunRequest(
            run_key=f"reevaluate:v{challenger}:{key}",
            run_config=decisions.reevaluate_run_config(),
            tags={TRIGGER_TAG: "challenger", REASON_TAG: reason[:900], CHALLENGER_TAG: challenger},
        )

    return challenger_sensor
