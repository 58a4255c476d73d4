"""Training: the kind is chosen on validation rows, the winner is refit on train + validation, and
either kind is registered, loaded and served through the same Predictor contract."""

import json
import pickle

import mlflow
import numpy as np
import pandas as pd
import pytest

from retrain_platform.core.linear import LinearPredictor, fit_logistic
from retrain_platform.core.predictor import LightGBMPredictor, Predictor, is_deterministic, one_row_latency_ms
from retrain_platform.core.split import time_split
from retrain_platform.core.metrics import classification_metrics
from retrain_platform.core.training import (
    LIGHTGBM,
    LOGISTIC,
    Candidate,
    TrainParams,
    choose,
    refit_rounds,
    train_candidate,
)
from retrain_platform.datasets import FLIGHTS, Categorical, DatasetSpec, Numeric
from retrain_platform.registry import ModelRegistry, ensure_experiment
from retrain_platform.registry.tracking import record_candidate

def no_data() -> pd.DataFrame:
    return pd.DataFrame()  # the frames are made per test


SYNTHETIC = DatasetSpec(
    name="synthetic",
    description="made up for the tests",
    features=(*(Numeric(f"x{i}") for i in range(8)), Categorical("group", ("a", "b", "c", "new"))),
    target="label",
    id_column="row_id",
    timestamp="at",
    load=no_data,
)
FAST = TrainParams(max_rounds=200, num_threads=1)


def synthetic(rows: int, log_odds, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8))
    group = rng.choice(["a", "b", "c"], size=rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)]).assign(group=group)
    probability = 1 / (1 + np.exp(-log_odds(frame)))
    return frame.assign(
        row_id=np.arange(rows), at=pd.date_range("2024-01-01", periods=rows, freq="h"),
        label=(rng.random(rows) < probability).astype("int64"),
    )  # fmt: skip


def linear_world(frame: pd.DataFrame) -> np.ndarray:
    """Every feature adds a little: what a logistic model is, and trees only approximate in steps."""
    weights = np.array([0.6, -0.5, 0.4, -0.4, 0.3, 0.3, -0.2, 0.2])
    return frame[[f"x{i}" for i in range(8)]].to_numpy() @ weights + frame["group"].map({"a": 0.5, "b": 0, "c": -0.5})


def interaction_world(frame: pd.DataFrame) -> np.ndarray:
    """Late exactly when x0 and x1 share a sign: no straight line separates it."""
    return np.where((frame["x0"] > 0) == (frame["x1"] > 0), 2.5, -2.5)


def test_a_linear_world_is_served_by_the_logistic_model():
    split = time_split(synthetic(3_000, linear_world), SYNTHETIC)
    trained = train_candidate(split, SYNTHETIC, FAST)
    assert trained.chosen == LOGISTIC and isinstance(trained.predictor, LinearPredictor)
    figures = {c.kind: c.validation_metrics["auc"] for c in trained.candidates}
    assert figures[LOGISTIC] > figures[LIGHTGBM]
    assert trained.reason.startswith("highest validation AUC: logistic")  # the chosen kind's figure first
    assert trained.trees == 0 and trained.holdout_metrics["auc"] > 0.75


def test_an_interaction_world_is_served_by_lightgbm():
    split = time_split(synthetic(3_000, interaction_world), SYNTHETIC)
    trained = train_candidate(split, SYNTHETIC, FAST)
    assert trained.chosen == LIGHTGBM and isinstance(trained.predictor, LightGBMPredictor)
    figures = {c.kind: c.validation_metrics["auc"] for c in trained.candidates}
    assert figures[LIGHTGBM] > 0.8 > 0.6 > figures[LOGISTIC]
    assert trained.trees == refit_rounds(trained.params["rounds_found"], len(split.train), len(split.train) + len(split.validation))
    assert trained.trees == trained.params["rounds_refit"] > trained.params["rounds_found"]


def test_another_kind_replaces_the_first_only_on_the_evidence_asked_for():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 2_000)
    first = labels + rng.normal(scale=1.5, size=2_000)
    slightly_better = first + 0.15 * labels + rng.normal(scale=0.3, size=2_000)
    clearly_better = labels + rng.normal(scale=0.7, size=2_000)

    def candidate(kind, scores):
        return Candidate(kind, None, classification_metrics(labels, scores), scores)

    lightgbm, close = candidate(LIGHTGBM, first), candidate(LOGISTIC, slightly_better)
    assert close.validation_metrics["auc"] > lightgbm.validation_metrics["auc"]
    assert choose([lightgbm, close], labels)[0] is close  # any higher AUC
    chosen, reason = choose([lightgbm, close], labels, switch_z=10)
    assert chosen is lightgbm and reason.startswith("no other kind beat lightgbm by z >= 10: lightgbm")
    far = candidate(LOGISTIC, clearly_better)
    chosen, reason = choose([lightgbm, far], labels, switch_z=10)
    assert chosen is far and reason.startswith("beat lightgbm by z >= 10: logistic")


def test_the_holdout_never_sways_the_choice():
    """The same train and validation rows with holdout labels turned upside down: the same choice,
    the same model; only the holdout figures change."""
    split = time_split(synthetic(3_000, linear_world), SYNTHETIC)
    flipped = split.holdout.assign(label=1 - split.holdout["label"])
    upside_down = type(split)(split.train, split.validation, flipped)
    honest, fooled = train_candidate(split, SYNTHETIC, FAST), train_candidate(upside_down, SYNTHETIC, FAST)
    assert honest.chosen == fooled.chosen and honest.reason == fooled.reason
    np.testing.assert_array_equal(honest.predictor.scores(split.holdout), fooled.predictor.scores(split.holdout))
    assert fooled.holdout_metrics["auc"] == pytest.approx(1 - honest.holdout_metrics["auc"])


@pytest.mark.parametrize("kind", [LIGHTGBM, LOGISTIC])
def test_the_refit_model_has_learned_the_validation_rows(kind):
    """A group that first turns up in the validation rows, always late: the model chosen on train
    alone cannot know it, the refit one must."""
    frame = synthetic(4_000, linear_world, seed=1)
    split = time_split(frame, SYNTHETIC)
    newest = split.validation.index[::2]
    frame.loc[newest, "group"], frame.loc[newest, "label"] = "new", 1
    split = time_split(frame, SYNTHETIC)
    assert "new" not in set(split.train["group"])
    params = TrainParams(max_rounds=200, num_threads=1, kinds=(kind,))
    trained = train_candidate(split, SYNTHETIC, params)
    (candidate,) = trained.candidates
    probe = split.holdout.head(200).assign(group="new")
    assert trained.predictor.scores(probe).mean() > candidate.predictor.scores(probe).mean() + 0.1
    # The threshold comes from the rows the pre-refit model never saw.
    assert trained.predictor.threshold == candidate.predictor.threshold
    assert trained.params["learned_rows"] == len(split.train) + len(split.validation)
    unrefit = train_candidate(split, SYNTHETIC, TrainParams(max_rounds=200, num_threads=1, kinds=(kind,), refit=False))
    np.testing.assert_array_equal(unrefit.predictor.scores(probe), unrefit.candidates[0].predictor.scores(probe))


@pytest.mark.parametrize("kind", [LIGHTGBM, LOGISTIC])
def test_the_served_model_learns_the_holdout_the_judged_one_never_saw(kind):
    """A group that first turns up in the holdout, always late: the fit the gates judge cannot know
    it (its holdout figures are honest), the one that serves must."""
    frame = synthetic(4_000, linear_world, seed=2)
    holdout = time_split(frame, SYNTHETIC).holdout.index[::2]
    frame.loc[holdout, "group"], frame.loc[holdout, "label"] = "new", 1
    split = time_split(frame, SYNTHETIC)
    params = TrainParams(max_rounds=200, num_threads=1, kinds=(kind,), learn_holdout=True)
    trained = train_candidate(split, SYNTHETIC, params)
    probe = split.holdout.head(200).assign(group="new")
    assert trained.served is trained.final
    assert trained.served.scores(probe).mean() > trained.predictor.scores(probe).mean() + 0.1
    assert trained.served.threshold == trained.predictor.threshold
    judged = classification_metrics(split.holdout["label"], trained.predictor.scores(split.holdout), trained.predictor.threshold)
    assert trained.holdout_metrics == judged  # the holdout figures are the blind fit's
    plain = train_candidate(split, SYNTHETIC, TrainParams(max_rounds=200, num_threads=1, kinds=(kind,)))
    assert plain.served is plain.predictor and plain.final is None


def test_recency_weights_lean_on_the_newest_rows():
    """The relation flips halfway: a short half-life follows the newer half."""
    old = synthetic(2_000, linear_world, seed=2)
    new = synthetic(2_000, lambda f: -linear_world(f), seed=3)
    new = new.assign(at=new["at"] + (old["at"].max() - new["at"].min()) + pd.Timedelta(hours=1), row_id=new["row_id"] + 2_000)
    split = time_split(pd.concat([old, new], ignore_index=True), SYNTHETIC, validation=0.1, holdout=0.1)
    plain = train_candidate(split, SYNTHETIC, TrainParams(kinds=(LOGISTIC,)))
    recent = train_candidate(split, SYNTHETIC, TrainParams(kinds=(LOGISTIC,), recency_half_life_days=10))
    assert recent.validation_metrics["auc"] > plain.validation_metrics["auc"] + 0.1
    assert recent.params["recency_half_life_days"] == 10


def test_linear_predictor_scores_one_row_as_in_bulk(tmp_path):
    frame = synthetic(2_000, linear_world)
    predictor = fit_logistic(frame, SYNTHETIC, threshold=0.4)
    assert isinstance(predictor, Predictor)
    rows = frame[SYNTHETIC.feature_names].head(300).to_dict("records")
    rows[0] = {**rows[0], "x3": None, "group": "unknown"}  # a missing number and an unseen category
    rows[1] = {**rows[1], "x4": float("nan"), "group": None}
    bulk = predictor.scores(pd.DataFrame(rows))
    np.testing.assert_allclose([predictor.score_one(row) for row in rows], bulk, rtol=0, atol=1e-12)
    np.testing.assert_allclose(predictor.score_rows(rows), bulk, rtol=0, atol=1e-12)
    # A missing number is the training median; an unknown category is the reference level.
    median = predictor.numeric["x3"][0]
    assert predictor.score_one(rows[0]) == pytest.approx(predictor.score_one({**rows[0], "x3": median, "group": "new"}))
    assert is_deterministic(predictor, frame)
    assert one_row_latency_ms(predictor, frame) < 0.2  # the gate allows 2 ms
    clone = pickle.loads(pickle.dumps(predictor))
    again = LinearPredictor.from_dict(json.loads(json.dumps(predictor.to_dict())), SYNTHETIC)
    np.testing.assert_array_equal(clone.scores(frame), bulk := predictor.scores(frame))
    np.testing.assert_array_equal(again.scores(frame), bulk)


def test_linear_importance_is_coefficient_times_spread_per_feature():
    frame = synthetic(5_000, linear_world)
    predictor = fit_logistic(frame, SYNTHETIC)
    importance = predictor.importance()
    assert set(importance) == set(SYNTHETIC.feature_names)
    # x0 weighs most in the world; x6, x7 least. Spread: a numeric term moves z by |weight| x std.
    assert max(importance, key=importance.get) == "x0"
    assert importance["x0"] == pytest.approx(abs(predictor.numeric["x0"][2]) * frame["x0"].std(ddof=0))
    shares = frame["group"].value_counts(normalize=True)
    coefficients = predictor.categorical["group"]
    expected = sum(abs(coefficients[g]) * np.sqrt(shares[g] * (1 - shares[g])) for g in shares.index)
    assert importance["group"] == pytest.approx(expected)


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = ensure_experiment(uri, "training-tests", (tmp_path / "artifacts").as_uri())
    return ModelRegistry(uri, FLIGHTS.model_name), experiment


@pytest.mark.parametrize("kind", [LOGISTIC, LIGHTGBM])
def test_either_kind_round_trips_through_the_registry(store, kind):
    registry, experiment = store
    split = time_split(FLIGHTS.load().iloc[:6_000], FLIGHTS)
    trained = train_candidate(split, FLIGHTS, TrainParams(max_rounds=30, num_threads=1, kinds=(kind,)))
    with mlflow.start_run(experiment_id=experiment) as run:
        version = record_candidate(mlflow, registry, trained, "slice", tags={}, example_rows=split.holdout.head(3))
    loaded = registry.load_predictor(version)
    assert loaded.kind == kind == registry.version_info(version).tags["model_kind"]
    assert type(loaded) is type(trained.predictor) and loaded.version == version
    assert loaded.threshold == trained.predictor.threshold
    holdout = split.holdout
    np.testing.assert_allclose(loaded.scores(holdout), trained.predictor.scores(holdout), rtol=0, atol=1e-12)
    rows = holdout[FLIGHTS.feature_names].head(50).to_dict("records")
    np.testing.assert_allclose([loaded.score_one(r) for r in rows], loaded.score_rows(rows), rtol=0, atol=1e-12)
    assert set(loaded.importance()) == set(FLIGHTS.feature_names)
    logged = mlflow.get_run(run.info.run_id).data
    assert logged.tags["model_kind"] == kind and f"candidate_{kind}_validation_auc" in logged.metrics
    assert logged.params["model_kind"] == kind and registry.window_rows(registry.version_info(version)) == len(split.train) + len(split.validation) + len(holdout)
    if kind == LOGISTIC:  # the logged pyfunc scores raw rows, as the native predictor does
        pyfunc = mlflow.pyfunc.load_model(f"models:/{FLIGHTS.model_name}/{version}")
        np.testing.assert_allclose(np.asarray(pyfunc.predict(holdout[FLIGHTS.feature_names].head(20))),
                                   loaded.scores(holdout.head(20)), rtol=0, atol=1e-12)  # fmt: skip


def test_serving_loads_a_linear_champion(store):
    from serving.model_holder import ModelHolder

    registry, experiment = store
    split = time_split(FLIGHTS.load().iloc[:6_000], FLIGHTS)
    trained = train_candidate(split, FLIGHTS, TrainParams(kinds=(LOGISTIC,)))
    with mlflow.start_run(experiment_id=experiment):
        version = record_candidate(mlflow, registry, trained, "slice", tags={}, example_rows=split.holdout.head(3))
    registry.promote(version, expected_current=None)
    holder = ModelHolder(FLIGHTS, registry.tracking_uri)
    assert holder.refresh()
    champion = holder.served.champion
    assert isinstance(champion, LinearPredictor) and champion.version == version
    row = split.holdout[FLIGHTS.feature_names].iloc[0].to_dict()
    assert champion.score_one(row) == pytest.approx(trained.predictor.score_one(row), abs=1e-12)


def test_the_candidates_table_shows_every_kind_and_the_choice():
    from retrain_platform.training.metadata import candidates_markdown

    split = time_split(synthetic(3_000, interaction_world), SYNTHETIC)
    trained = train_candidate(split, SYNTHETIC, FAST)
    table = candidates_markdown(trained)
    assert table.startswith("| metric | lightgbm (chosen) | logistic |")
    auc_row = next(line for line in table.splitlines() if line.startswith("| auc |"))
    assert f"{trained.candidates[0].validation_metrics['auc']:.4f}" in auc_row
    assert f"Chosen: **lightgbm**, {trained.reason}, then refit on {len(split.train) + len(split.validation):,}" in table
