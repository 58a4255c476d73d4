"""The spec travels with the model: a registered version is fed with the features and category codes
it was trained with, whatever the dataset's YAML says later; what it can no longer be fed is an
error at load; and it explains its scores feature by feature.

Real MLflow store in a temp folder, real YAML files in a temp datasets folder."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from retrain_platform.core.feature_mapping import FeatureMapping, UnservableVersion
from retrain_platform.core.linear import LinearPredictor
from retrain_platform.core.predictor import FeatureEncoder, LightGBMPredictor
from retrain_platform.core.split import time_split
from retrain_platform.core.training import LIGHTGBM, LOGISTIC, TrainParams, train_candidate
from retrain_platform.datasets import FLIGHTS, get_spec
from retrain_platform.datasets.catalog import FOLDER_VARIABLE, SHIPPED_FOLDER
from retrain_platform.definitions import build_definitions
from retrain_platform.registry import ModelRegistry, ensure_experiment
from retrain_platform.registry.flavours import KIND_TAG
from retrain_platform.registry.tracking import record_candidate
from retrain_platform.training.evaluation import importance_markdown

from .conftest import make_settings, run_job

NEW_CARRIER = "0A"  # sorts before every real one: at the front of the list, it moves every code


@pytest.fixture(scope="module")
def split():
    return time_split(FLIGHTS.load().iloc[:6_000], FLIGHTS)


@pytest.fixture(scope="module")
def registered(tmp_path_factory, split):
    """One version of each kind, registered with the shipped flights spec."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment = ensure_experiment(uri, "model-spec-tests", (folder / "artifacts").as_uri())
    registry = ModelRegistry(uri, FLIGHTS.model_name)
    versions = {}
    for kind in (LIGHTGBM, LOGISTIC):
        trained = train_candidate(split, FLIGHTS, TrainParams(max_rounds=40, num_threads=1, kinds=(kind,)))
        with mlflow.start_run(experiment_id=experiment):
            example = split.holdout.head(3)
            versions[kind] = record_candidate(mlflow, registry, trained, "slice", tags={}, example_rows=example)
    return registry, versions, experiment


@pytest.fixture
def rows(split) -> pd.DataFrame:
    holdout = split.holdout.head(300).copy()
    holdout.loc[holdout.index[0], "carrier"] = None  # a missing category is scored too
    return holdout


def edited_flights(tmp_path, monkeypatch, edit) -> None:
    """flights.yaml as shipped, its features passed through `edit`, as the only dataset of a new
    datasets folder that every process would now read."""
    data = yaml.safe_load((SHIPPED_FOLDER / "flights.yaml").read_text())
    data["data"]["path"] = str((SHIPPED_FOLDER / data["data"]["path"]).resolve())
    data["features"] = edit(data["features"])
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "flights.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    monkeypatch.setenv(FOLDER_VARIABLE, str(folder))


def new_carrier_first(features: dict) -> dict:
    features["carrier"]["categories"] = [NEW_CARRIER, *features["carrier"]["categories"]]
    return features


def new_carrier_first_and_features_reversed(features: dict) -> dict:
    return dict(reversed(new_carrier_first(features).items()))


def all_scores(predictor, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    records = frame[FLIGHTS.feature_names].to_dict("records")
    return predictor.scores(frame), predictor.score_rows(records), np.array([predictor.score_one(r) for r in records])


@pytest.mark.parametrize("kind", [LIGHTGBM, LOGISTIC])
def test_a_spec_edit_never_changes_what_a_registered_version_receives(registered, rows, tmp_path, monkeypatch, kind):
    registry, versions, _ = registered
    before = all_scores(registry.load_predictor(versions[kind]), rows)

    edited_flights(tmp_path, monkeypatch, new_carrier_first_and_features_reversed)
    edited = get_spec("flights")
    assert edited.feature("carrier").categories[0] == NEW_CARRIER
    assert edited.feature_names == FLIGHTS.feature_names[::-1]
    loaded = registry.load_predictor(versions[kind])
    assert loaded.spec is edited and loaded.mapping == FeatureMapping.from_spec(FLIGHTS)
    for was, now in zip(before, all_scores(loaded, rows), strict=True):
        np.testing.assert_array_equal(now, was)
    # A carrier the version never knew is a missing carrier to it.
    row = rows[edited.feature_names].iloc[1].to_dict()
    assert loaded.score_one({**row, "carrier": NEW_CARRIER}) == loaded.score_one({**row, "carrier": None})


def test_encoding_from_todays_spec_would_have_changed_the_scores(registered, rows, tmp_path, monkeypatch):
    """What the stored mapping prevents: the same booster fed with the edited spec's codes."""
    registry, versions, _ = registered
    edited_flights(tmp_path, monkeypatch, new_carrier_first)
    loaded = registry.load_predictor(versions[LIGHTGBM])
    assert FeatureEncoder(get_spec("flights")).codes["carrier"]["AA"] == loaded.encoder.codes["carrier"]["AA"] + 1
    todays = LightGBMPredictor(loaded.booster, get_spec("flights"), loaded.threshold)
    assert not np.array_equal(todays.scores(rows), loaded.scores(rows))


def test_a_removed_or_retyped_feature_is_an_error_at_load_naming_version_dataset_and_features(
    registered, tmp_path, monkeypatch
):
    registry, versions, _ = registered

    def carrier_gone_origin_a_number(features: dict) -> dict:
        del features["carrier"]
        features["origin"] = {"type": "number"}
        return features

    edited_flights(tmp_path, monkeypatch, carrier_gone_origin_a_number)
    for kind, version in versions.items():
        with pytest.raises(UnservableVersion) as raised:
            registry.load_predictor(version)
        message = str(raised.value)
        assert f"retrain-flights version {version}" in message and "dataset 'flights'" in message, kind
        assert "gone from the spec: carrier" in message and "changed type: origin (was category)" in message, kind


def test_serving_reports_a_production_version_it_cannot_feed(registered, tmp_path, monkeypatch):
    from serving.model_holder import ModelHolder

    registry, versions, _ = registered
    registry.promote(versions[LIGHTGBM], expected_current=registry.production_version())
    edited_flights(tmp_path, monkeypatch, lambda features: {k: v for k, v in features.items() if k != "dest"})
    holder = ModelHolder(get_spec("flights"), registry.tracking_uri)
    assert holder.refresh() is False and holder.served is None
    health = holder.health()
    assert health["status"] == "unavailable"
    assert f"retrain-flights version {versions[LIGHTGBM]} cannot be served" in health["registry_error"]
    assert "gone from the spec: dest" in health["registry_error"]


def test_a_version_registered_before_mappings_were_kept_still_loads(registered, split, rows, tmp_path, monkeypatch):
    """Logged as the platform logged LightGBM before: the booster, no mapping in its metadata."""
    registry, versions, experiment = registered
    booster = registry.load_predictor(versions[LIGHTGBM]).booster
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.lightgbm.log_model(booster, name="model", registered_model_name=FLIGHTS.model_name,
                                         metadata={"dataset": "flights", KIND_TAG: LIGHTGBM})  # fmt: skip
    version = str(info.registered_model_version)
    registry.tag_version(version, {"dataset": "flights", "decision_threshold": "0.5", KIND_TAG: LIGHTGBM})
    old = registry.load_predictor(version)
    # Its encoding comes from the spec as it stands: the flights spec, as it was trained with.
    assert old.mapping == FeatureMapping.from_spec(FLIGHTS)
    np.testing.assert_array_equal(old.scores(rows), LightGBMPredictor(booster, FLIGHTS, 0.5).scores(rows))
    # Reordered features are still fed in the booster's own order.
    edited_flights(tmp_path, monkeypatch, lambda features: dict(reversed(features.items())))
    np.testing.assert_array_equal(registry.load_predictor(version).scores(rows), old.scores(rows))


def test_a_linear_model_saved_without_a_mapping_reads_it_from_its_own_tables(registered):
    registry, versions, _ = registered
    linear = registry.load_predictor(versions[LOGISTIC])
    legacy = LinearPredictor.from_dict(linear.to_dict(), FLIGHTS)
    assert set(legacy.mapping.names) == set(FLIGHTS.feature_names)
    assert legacy.mapping.categories == {f: FLIGHTS.feature(f).categories for f in FLIGHTS.categorical_features}


@pytest.mark.parametrize("kind", [LIGHTGBM, LOGISTIC])
def test_contributions_add_up_to_the_raw_score(registered, rows, kind):
    registry, versions, _ = registered
    predictor = registry.load_predictor(versions[kind])
    explained = predictor.contributions(rows)
    assert list(explained.features.columns) == FLIGHTS.feature_names and len(explained.bias) == len(rows)
    if kind == LIGHTGBM:
        raw = predictor.booster.predict(predictor.encoder.frame(rows), raw_score=True)
    else:
        raw = predictor.log_odds(rows)
    np.testing.assert_allclose(explained.log_odds(), raw, rtol=0, atol=1e-9)
    np.testing.assert_allclose(1 / (1 + np.exp(-explained.log_odds())), predictor.scores(rows), rtol=0, atol=1e-12)
    assert (explained.features.abs().sum() > 0).sum() >= 3  # several features really take part
    by_rows = predictor.contribution_rows(rows[FLIGHTS.feature_names].to_dict("records"))
    np.testing.assert_allclose(by_rows.features.to_numpy(), explained.features.to_numpy(), rtol=0, atol=1e-12)


def test_linear_contribution_is_coefficient_times_standardised_value(registered, rows):
    registry, versions, _ = registered
    predictor = registry.load_predictor(versions[LOGISTIC])
    explained = predictor.contributions(rows)
    median, mean, weight = predictor.numeric["distance"]
    np.testing.assert_allclose(explained.features["distance"], (rows["distance"].fillna(median) - mean) * weight)
    carrier = rows["carrier"].map(predictor.categorical["carrier"]).fillna(0.0)  # missing: the reference level
    np.testing.assert_allclose(explained.features["carrier"], carrier)
    assert explained.features["carrier"].iloc[0] == 0.0


def test_the_graph_registers_the_mapping_and_reports_global_importance(tmp_path, instance):
    settings = make_settings(tmp_path)
    result = run_job(build_definitions(settings), instance, raw_data={"window_days": 30, "window_end": "2013-03-31"},
                     candidate_model={"max_rounds": 40, "model_kinds": ["lightgbm"]},
                     evaluation_report={"auc_floor": 0.5, "recall_floor": 0.0})  # fmt: skip
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    assert registry.load_predictor("1").mapping == FeatureMapping.from_spec(FLIGHTS)
    table = result.asset_materializations_for_node("evaluation_report")[0].metadata["challenger_importance"].value
    assert table.startswith("| feature | share |") and len(table.splitlines()) == 2 + len(FLIGHTS.feature_names)


def test_importance_table_lists_features_by_share():
    table = importance_markdown({"a": 1.0, "b": 3.0, "c": 0.0})
    lines = table.splitlines()
    assert lines[0] == "| feature | share |" and lines[2:] == ["| b | 75.0% |", "| a | 25.0% |", "| c | 0.0% |"]


def test_a_champion_the_spec_can_no_longer_feed_never_blocks_its_successor(tmp_path, instance, monkeypatch):
    settings = make_settings(tmp_path)
    window = {"window_days": 30, "window_end": "2013-03-31"}
    train = {"max_rounds": 40, "model_kinds": ["lightgbm"]}
    gates = {"auc_floor": 0.5, "recall_floor": 0.0, "cooldown_days": 0.0}
    assert run_job(build_definitions(settings), instance, raw_data=window, candidate_model=train,
                   evaluation_report=gates).success  # fmt: skip
    edited_flights(tmp_path, monkeypatch, lambda features: {k: v for k, v in features.items() if k != "dest"})
    result = run_job(build_definitions(settings), instance, raw_data=window, candidate_model=train,
                     evaluation_report=gates)  # fmt: skip
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    assert registry.production_version() == "2"
    report = result.asset_materializations_for_node("evaluation_report")[0].metadata
    assert "dest" in report["champion_unservable"].value and "no champion yet" in report["gates"].value
