"""The retrain graph end to end on a real Dagster instance and a real MLflow store in a temp folder."""

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from retrain_platform.datasets import FLIGHTS
from retrain_platform.definitions import build_definitions
from retrain_platform.core.split import learned_until, unseen_rows
from retrain_platform.registry import CHALLENGER, ModelRegistry
from retrain_platform.replay.report import rejections

from .conftest import make_settings, run_job

WINDOW = {"window_days": 45, "window_end": "2013-03-31"}
WEAK = {"max_rounds": 1, "num_leaves": 2, "learning_rate": 0.001, "model_kinds": ["lightgbm"]}  # one split: easy to beat
GOOD = {"max_rounds": 120}
LENIENT = {"auc_floor": 0.5, "recall_floor": 0.0, "cooldown_days": 0.0}


def retrain(defs, instance, train: dict, gates: dict | None = None, window: dict = WINDOW):
    return run_job(defs, instance, raw_data=window, candidate_model=train, evaluation_report=gates or LENIENT)


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def materialized(result, asset: str) -> bool:
    return bool(result.asset_materializations_for_node(asset))


def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)


def test_whole_graph_lands_a_model_under_production(settings, defs, instance):
    result = retrain(defs, instance, GOOD, gates={})  # the real default gates
    assert result.success
    assert checks(result) == {"schema_valid": True, "enough_rows": True, "window_covered": True, "gates_passed": True}
    reg = registry(settings)
    assert reg.production_version() == "1" and reg.alias_version(CHALLENGER) == "1"
    info = reg.version_info("1")
    assert info.tags["dagster_run_id"] == result.run_id
    assert info.tags["data_window"] == "2013-02-15..2013-03-31"
    assert info.tags["evaluation"] == "passed" and info.tags["promoted_at"]
    run = MlflowClient(settings.tracking_uri).get_run(info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.metrics["holdout_auc"] > 0.6
    assert len(reg.load_reference("1")) > 1_000  # the drift baseline travels with the version
    # The version that serves learned the holdout; the gates judged the fit that never saw it.
    candidate = result.asset_materializations_for_node("candidate_model")[0].metadata
    assert candidate["learned_holdout"].value is True
    judged = reg.load_holdout_scores("1")
    assert float(info.tags["holdout_auc"]) == pytest.approx(roc_auc_score(judged["label"], judged["score"]), abs=1e-6)
    flights = FLIGHTS.load()
    window = flights[flights[FLIGHTS.timestamp] < "2013-04-01"].sort_values([FLIGHTS.timestamp, FLIGHTS.id_column])
    holdout = window.tail(len(judged))
    assert (holdout[FLIGHTS.target].to_numpy() == judged["label"].to_numpy()).all()
    learned = roc_auc_score(holdout[FLIGHTS.target], reg.load_predictor("1").scores(holdout))
    assert learned > float(info.tags["holdout_auc"])
    report = result.asset_materializations_for_node("evaluation_report")[0].metadata
    assert "| auc_floor |" in report["gates"].value and "**n/a** | no champion yet" in report["gates"].value
    assert report["roc"].value.startswith("![ROC curves](data:image/png;base64,")
    predictor = reg.load_predictor(reg.production_version())
    assert 0 < predictor.score_rows([FLIGHTS.load().iloc[0].to_dict()])[0] < 1


def test_promote_reject_and_roll_back(settings, defs, instance):
    reg = registry(settings)
    assert retrain(defs, instance, WEAK).success and reg.production_version() == "1"

    better = retrain(defs, instance, GOOD)
    assert better.success and checks(better)["gates_passed"]
    assert reg.production_version() == "2"
    assert reg.version_info("2").tags["previous_production"] == "1"

    worse = retrain(defs, instance, WEAK)
    assert not worse.success
    assert checks(worse)["gates_passed"] is False
    evaluation = worse.get_asset_check_evaluations()[-1]
    assert "auc_improvement" in evaluation.metadata["failed_gates"].value
    assert not materialized(worse, "production_model")
    assert reg.production_version() == "2"  # a rejected candidate leaves production alone
    assert reg.version_info("3").tags["evaluation"] == "rejected"
    assert reg.alias_version(CHALLENGER) is None  # serving stops shadow-scoring a rejected candidate
    promoted, rejected = reg.version_info("2").tags, reg.version_info("3").tags
    assert float(promoted["holdout_auc"]) >= float(promoted["champion_holdout_auc"])  # the AUC gate held
    assert rejected["champion_at_evaluation"] == "2" and float(rejected["champion_holdout_auc"]) > 0.5
    (listed,) = rejections(reg)  # what the replay report lists
    assert listed["version"] == "3" and "auc_improvement" in listed["failed_gates"] and listed["champion"] == "2"
    assert listed["holdout_auc"] == pytest.approx(float(rejected["holdout_auc"]))

    rollback = run_job(defs, instance, "rollback_job")
    assert rollback.success and reg.production_version() == "1"
    assert [h["action"] for h in reg.history()] == ["promote", "promote", "rollback"]


def test_champion_and_challenger_are_judged_on_holdout_rows_the_champion_never_learned(settings, defs, instance):
    reg = registry(settings)
    assert retrain(defs, instance, WEAK).success  # v1 learned its whole window, to 2013-03-31
    # v2's holdout is the newest 15 % of 2013-02-20..2013-04-05: late March (learned by v1) and April.
    later = retrain(defs, instance, WEAK, window={"window_days": 45, "window_end": "2013-04-05"})
    report = later.output_for_node("evaluation_report")
    metadata = later.asset_materializations_for_node("evaluation_report")[0].metadata
    judged = metadata["holdout_rows"].value
    assert report["judged_on"].startswith(f"both judged on the {judged:,} of ") and "(up to 2013-03-31)" in report["judged_on"]
    assert 200 <= judged < int(report["judged_on"].split(" of ")[1].split(" ")[0].replace(",", ""))
    assert metadata["judged_on"].value == report["judged_on"] and reg.version_info("2").tags["champion_at_evaluation"] == "1"
    # Too few unseen rows: all are used, and the report says so; a champion without dates: all, silently.
    holdout = later.output_for_node("validated_features").tail(1_000)
    since = learned_until("2013-01-01..2013-04-04")
    every, why = unseen_rows(holdout, FLIGHTS, since, min_rows=len(holdout))  # some are unseen, not all
    assert every.all() and why.startswith("only ") and why.endswith("both judged on every holdout row")
    assert learned_until("all rows (no time axis)") is None
    mask, why = unseen_rows(holdout, FLIGHTS, None, 200)
    assert mask.all() and why is None


def test_bad_batch_fails_blocking_checks_and_production_stays(settings, defs, instance, tmp_path):
    reg = registry(settings)
    assert retrain(defs, instance, WEAK).success and reg.production_version() == "1"

    bad = FLIGHTS.load()
    march = bad[FLIGHTS.timestamp] >= "2013-03-01"
    rows = bad.index[march][:4]
    bad = bad.astype({"dep_hour": "float64"})
    bad.loc[rows[0], "carrier"] = "ZZ"  # unknown category
    bad.loc[rows[1], "dep_hour"] = 31  # out of range
    bad.loc[rows[2], "origin"] = None  # null where none is allowed
    bad["distance"] = bad["distance"].astype(str)  # wrong type
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    bad_defs = build_definitions(settings.model_copy(update={"history_path": str(path)}))

    result = retrain(bad_defs, instance, GOOD)
    assert not result.success
    assert checks(result) == {"schema_valid": False, "enough_rows": True, "window_covered": True}
    schema = next(e for e in result.get_asset_check_evaluations() if e.check_name == "schema_valid")
    assert schema.metadata["failing_columns"].value == ["carrier", "dep_hour", "distance", "origin"]
    assert "ZZ" in schema.metadata["offending_rows"].value
    assert str(int(bad.loc[rows[0], "flight_id"])) in schema.metadata["offending_rows"].value
    for downstream in ("candidate_model", "evaluation_report", "production_model"):
        assert not materialized(result, downstream)
    assert reg.production_version() == "1"
    assert len(reg.client.search_model_versions(f"name='{FLIGHTS.model_name}'")) == 1  # nothing registered


def test_a_second_dataset_needs_only_its_spec(tmp_path, instance):
    settings = make_settings(tmp_path, dataset="breast_cancer")
    result = run_job(build_definitions(settings), instance,
                     candidate_model={"holdout_fraction": 0.4, "max_rounds": 100}, evaluation_report={})  # fmt: skip
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert checks(result)["window_covered"]  # no time axis: says so and passes
    reg = ModelRegistry(settings.tracking_uri, "retrain-breast_cancer")
    assert reg.production_version() == "1"
    metrics = result.asset_materializations_for_node("evaluation_report")[0].metadata
    assert "| auc_floor | 0.9" in metrics["gates"].value


def test_window_config_changes_the_data(settings, defs, instance):
    result = run_job(defs, instance, raw_data={"window_days": 10, "window_end": "2013-03-10"},
                     candidate_model={"max_rounds": 5}, evaluation_report=LENIENT)  # fmt: skip
    frame = result.output_for_node("raw_data")
    assert pd.Timestamp(frame[FLIGHTS.timestamp].min()).date().isoformat() == "2013-03-01"
    assert pd.Timestamp(frame[FLIGHTS.timestamp].max()).date().isoformat() == "2013-03-10"
