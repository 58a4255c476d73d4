"""Live evidence as a gate, on a real Dagster instance, MLflow store and prediction log: a
challenger that passed offline waits in shadow, then is promoted early once the labelled traffic
it shadow-scored shows it is better."""

import json
import uuid
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from retrain_platform.datasets import FLIGHTS
from retrain_platform.definitions import build_definitions
from retrain_platform.names import CHALLENGER_TAG, REEVALUATE_JOB
from retrain_platform.registry import CHALLENGER, WAITING, ModelRegistry
from retrain_platform.store import PredictionStore

from .conftest import make_settings, pythonic_resources, run_job

REQUIRED = {"auc_floor": 0.5, "recall_floor": 0.0, "cooldown_days": 0.0, "live_evidence": "required"}
WINDOW = {"window_days": 45, "window_end": "2013-03-31"}
WEAK = {"max_rounds": 1, "num_leaves": 2, "learning_rate": 0.001, "model_kinds": ["lightgbm"]}
GOOD = {"max_rounds": 120}


def shadow_traffic(settings, registry: ModelRegistry, champion: str, challenger: str, rows: pd.DataFrame) -> None:
    """Log `rows` as serving does while a challenger shadows: the champion's scores answered, the
    challenger's beside them; then their labels arrive."""
    champion_model, challenger_model = registry.load_predictor(champion), registry.load_predictor(challenger)
    scores, shadow = champion_model.scores(rows), challenger_model.scores(rows)
    store = PredictionStore(settings.store_url)
    logged = []
    for row, score, shadow_score in zip(rows.to_dict("records"), scores, shadow, strict=True):
        features = {name: (None if pd.isna(row[name]) else row[name]) for name in FLIGHTS.feature_names}
        logged.append({"prediction_id": str(uuid.uuid4()), "created_at": datetime.now(UTC), "model_version": champion,
                       "features": features | {"flight_id": int(row["flight_id"])}, "score": float(score),
                       "predicted_label": int(score >= champion_model.threshold),
                       "shadow_version": challenger, "shadow_score": float(shadow_score)})  # fmt: skip
    store.record_many(logged)
    store.flush()
    for entry, row in zip(logged, rows.to_dict("records"), strict=True):
        store.add_label(entry["prediction_id"], int(row[FLIGHTS.target]))
    store.close()


def challenger_tick(defs, instance):
    context = dg.build_sensor_context(instance=instance, resources=pythonic_resources(defs), definitions=defs)
    return defs.resolve_sensor_def("challenger_sensor").evaluate_tick(context)


def test_a_challenger_waits_in_shadow_and_is_promoted_early_on_live_evidence(tmp_path):
    settings = make_settings(tmp_path, retrain_gates=json.dumps(REQUIRED))
    defs = build_definitions(settings)
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    with dg.instance_for_test() as instance:
        first = run_job(defs, instance, raw_data=WINDOW, candidate_model=WEAK, evaluation_report=REQUIRED)
        assert first.success and registry.production_version() == "1"  # no champion: live evidence n/a

        second = run_job(defs, instance, raw_data=WINDOW, candidate_model=GOOD, evaluation_report=REQUIRED)
        assert second.success  # waiting is not a failure of the run
        (gates,) = second.get_asset_check_evaluations()[-1:]
        assert gates.check_name == "gates_passed" and not gates.passed
        assert gates.severity == dg.AssetCheckSeverity.WARN and gates.description.startswith("wait in shadow")
        assert not second.asset_materializations_for_node("production_model")
        assert registry.production_version() == "1" and registry.alias_version(CHALLENGER) == "2"
        assert registry.version_info("2").tags["evaluation"] == WAITING and registry.waiting_challenger() == "2"

        skipped = challenger_tick(defs, instance)
        assert not skipped.run_requests and "challenger v2 waits in shadow" in skipped.skip_message

        april = FLIGHTS.load()
        april = april[(april[FLIGHTS.timestamp] >= "2013-04-01") & (april[FLIGHTS.timestamp] < "2013-04-15")]
        shadow_traffic(settings, registry, "1", "2", april.sample(3_000, random_state=0))
        (request,) = challenger_tick(defs, instance).run_requests
        assert request.run_key == "reevaluate:v2:live-better" and request.tags[CHALLENGER_TAG] == "2"
        assert "live evidence favours the challenger" in request.tags["retrain_platform/reason"]

        job = defs.resolve_job_def(REEVALUATE_JOB)
        stale = job.execute_in_process(instance=instance, run_config=request.run_config,
                                       tags={**request.tags, CHALLENGER_TAG: "7"}, raise_on_error=False)  # fmt: skip
        assert not stale.success and registry.production_version() == "1"  # never another candidate's evaluation

        promoted = job.execute_in_process(instance=instance, run_config=request.run_config, tags=request.tags)
        assert promoted.success and registry.production_version() == "2"
        report = promoted.asset_materializations_for_node("evaluation_report")[0].metadata["gates"].value
        assert "| live_evidence |" in report and "challenger better: live AUC" in report
        assert registry.version_info("2").tags["evaluation"] == "passed" and registry.waiting_challenger() is None
        assert not challenger_tick(defs, instance).run_requests


def test_a_datasets_own_gates_apply_under_what_a_run_sets():
    from retrain_platform.core.gates import GateConfig
    from retrain_platform.training.evaluation import GateSettings, dataset_gates

    spec_gates = GateConfig(min_holdout_rows=50, live_evidence="required")
    gates = dataset_gates(spec_gates, GateSettings(cooldown_days=1.0))
    assert (gates.min_holdout_rows, gates.live_evidence, gates.cooldown_days) == (50, "required", 1.0)
    assert dataset_gates(spec_gates, GateSettings(live_evidence="off")).live_evidence == "off"  # the run wins
    assert dataset_gates(GateConfig(), GateSettings()) == GateConfig()
