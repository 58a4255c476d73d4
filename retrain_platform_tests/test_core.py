"""Unit tests of the pure core: spec → schema, window, split, metrics, gates, predictor."""

import logging
import pickle
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import lightgbm.basic
import numpy as np
import pandas as pd
import pytest

from retrain_platform.core import predictor as predictor_module
from retrain_platform.core.feature_mapping import FeatureMapping
from retrain_platform.core.gates import (
    Evidence,
    GateConfig,
    Verdict,
    all_passed,
    awaits_live_evidence,
    evaluate_gates,
    failed,
    gates_markdown,
    reevaluation_due,
)
from retrain_platform.core.live_comparison import (
    CHALLENGER_BETTER,
    CHAMPION_BETTER,
    NO_CLEAR_DIFFERENCE,
    TOO_FEW_ROWS,
    LiveComparison,
)
from retrain_platform.core.metrics import best_f1_threshold, classification_metrics
from retrain_platform.core.predictor import FeatureEncoder, LightGBMPredictor, PublicRowScorer, SingleRowScorer
from retrain_platform.core.split import time_split
from retrain_platform.core.validation import build_schema, check_row_count, check_schema, check_window_coverage
from retrain_platform.core.window import Window, select_window
from retrain_platform.datasets import FLIGHTS, SPECS, get_spec


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return FLIGHTS.load()


def test_every_spec_matches_its_own_data():
    for spec in SPECS.values():
        frame = spec.load()
        assert list(frame.columns) == spec.columns
        assert check_schema(frame, spec).passed, spec.name


def test_no_feature_is_measured_after_take_off():
    assert not {"dep_time", "dep_delay", "arr_time", "air_time", "arr_delay"} & set(FLIGHTS.columns)


def test_schema_is_derived_from_the_spec():
    schema = build_schema(FLIGHTS)
    assert set(schema.columns) == set(FLIGHTS.columns)
    assert schema.columns["carrier"].nullable is False and schema.columns["wind_gust"].nullable is True
    with pytest.raises(KeyError, match="unknown dataset"):
        get_spec("nope")


def test_bad_batch_names_columns_and_rows(flights):
    bad = flights.head(2_000).copy()
    bad.loc[3, "carrier"] = "ZZ"  # unknown category
    bad.loc[5, "dep_hour"] = 31  # out of range
    bad.loc[7, "origin"] = None  # null where none is allowed
    bad["distance"] = bad["distance"].astype(str)  # wrong type
    outcome = check_schema(bad, FLIGHTS)
    assert not outcome.passed
    assert outcome.metadata["failing_columns"] == ["carrier", "dep_hour", "distance", "origin"]
    assert "ZZ" in outcome.metadata["failure_cases"] and "31" in outcome.metadata["failure_cases"]
    assert f"| {bad.loc[3, 'flight_id']} " in outcome.metadata["offending_rows"] or "| 3 |" in outcome.metadata["offending_rows"]


def test_row_count_and_window_coverage(flights):
    january, window = select_window(flights, FLIGHTS, days=31, end="2013-01-31")
    assert window.label() == "2013-01-01..2013-01-31"
    assert january[FLIGHTS.timestamp].dt.month.unique().tolist() == [1]
    assert check_row_count(january, FLIGHTS).passed
    assert not check_row_count(january.head(10), FLIGHTS).passed
    assert check_window_coverage(january, FLIGHTS, window.start, window.end).passed
    holed = january[january[FLIGHTS.timestamp].dt.day > 10]
    outcome = check_window_coverage(holed, FLIGHTS, window.start, window.end)
    assert not outcome.passed and "2013-01-01" in outcome.metadata["missing_days_sample"]

    history, everything = select_window(flights, FLIGHTS, days=0, end="2013-03-15")  # 0: all the history
    assert everything.label() == "2013-01-01..2013-03-15" and len(history) == (flights[FLIGHTS.timestamp] < "2013-03-16").sum()
    assert check_window_coverage(history, FLIGHTS, everything.start, everything.end).passed
    with pytest.raises(ValueError, match="or 0 for all the history"):
        select_window(flights, FLIGHTS, days=-1)


def test_window_survives_as_frame_attribute(flights):
    frame, window = select_window(flights, FLIGHTS, days=7)
    window.store_on(frame)
    assert Window.of(frame) == window and window.end.date().isoformat() == "2013-12-31"


def test_split_is_time_ordered(flights):
    split = time_split(flights.sample(5_000, random_state=1), FLIGHTS)
    ts = FLIGHTS.timestamp
    assert split.train[ts].max() <= split.validation[ts].min() <= split.validation[ts].max() <= split.holdout[ts].min()
    assert len(split.train) + len(split.validation) + len(split.holdout) == 5_000
    with pytest.raises(ValueError):
        time_split(flights, FLIGHTS, validation=0.6, holdout=0.5)


def test_metrics_and_threshold():
    y = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.2, 0.8, 0.7, 0.25, 0.3])
    m = classification_metrics(y, scores, 0.5)
    assert m["auc"] == pytest.approx(8 / 9) and m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)
    assert best_f1_threshold(y, scores) == pytest.approx(0.25)  # F1 6/7 beats 4/5 at 0.7


def test_encoder_codes_categories_by_spec_position():
    encoder = FeatureEncoder(FLIGHTS)
    row = {name: 1.0 for name in FLIGHTS.numeric_features} | {"carrier": "AA", "origin": "LGA", "dest": "NOPE"}
    encoded = encoder.rows([row])[0]
    assert encoded[FLIGHTS.feature_names.index("carrier")] == 1.0
    assert encoded[FLIGHTS.feature_names.index("origin")] == 2.0
    assert np.isnan(encoded[FLIGHTS.feature_names.index("dest")])  # unseen category → missing
    frame = pd.DataFrame([row])
    np.testing.assert_array_equal(encoder.frame(frame)[0], encoded)


def test_encoder_follows_its_mapping_whatever_the_spec_says():
    mapping = FeatureMapping(("origin", "distance", "carrier"), {"origin": ("LGA", "JFK"), "carrier": ("UA", "AA")})
    encoder = FeatureEncoder(mapping)
    row = {"carrier": "AA", "origin": "EWR", "distance": 500.0, "dest": "BOS"}  # EWR unknown to it, dest unused
    np.testing.assert_array_equal(encoder.rows([row])[0], [np.nan, 500.0, 1.0])
    np.testing.assert_array_equal(encoder.row(row, np.empty(3)), [np.nan, 500.0, 1.0])
    np.testing.assert_array_equal(encoder.frame(pd.DataFrame([row]))[0], [np.nan, 500.0, 1.0])
    assert encoder.categorical_indices == [0, 2]
    assert FeatureMapping.from_dict(mapping.to_dict()) == mapping
    # The spec as it stands may add features and categories: nothing to report.
    assert mapping.problems(FLIGHTS) == [] and FeatureMapping.from_spec(FLIGHTS).problems(FLIGHTS) == []


def _small_booster(sample: pd.DataFrame) -> lgb.Booster:
    encoder = FeatureEncoder(FLIGHTS)
    data = lgb.Dataset(encoder.frame(sample), sample[FLIGHTS.target], categorical_feature=encoder.categorical_indices)
    return lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, data, num_boost_round=30)


def test_single_row_fast_path_scores_as_the_booster_does(flights):
    sample = flights.head(3_000)
    encoder = FeatureEncoder(FLIGHTS)
    booster = _small_booster(sample)
    predictor = LightGBMPredictor(booster, FLIGHTS, threshold=0.5)
    rows = sample[FLIGHTS.feature_names].tail(300).to_dict("records")
    rows[0] = {**rows[0], "dest": "NOPE", "temp": None}  # unseen category and a missing value
    expected = booster.predict(encoder.frame(pd.DataFrame(rows)))
    assert len(set(expected.round(6))) > 50  # the rows really score differently
    np.testing.assert_allclose([predictor.score_one(row) for row in rows], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(predictor.score_rows(rows), expected, rtol=0, atol=1e-12)
    # The fast path holds a C handle; a pickled predictor (Dagster's IO manager) makes its own.
    clone = pickle.loads(pickle.dumps(predictor))
    assert clone.score_one(rows[1]) == predictor.score_one(rows[1]) == pytest.approx(expected[1], abs=1e-12)


def test_private_lightgbm_fast_path_still_works_on_this_lightgbm(flights):
    """SingleRowScorer is the platform's one use of private LightGBM API, kept because the public
    Booster.predict costs several times as much per row (benchmarks/one_row_predict.py). An upgrade
    that moves or changes it must fail here, loudly, not quietly slow down serving."""
    version = f"LightGBM {lgb.__version__}"
    fix = "rewrite SingleRowScorer in retrain_platform/core/predictor.py or drop it for Booster.predict"
    missing = [name for name in ("_LIB", "_c_str", "_safe_call") if not hasattr(lightgbm.basic, name)]
    assert not missing, f"{version}: lightgbm.basic has no {missing}; {fix}"
    functions = ("LGBM_BoosterPredictForMatSingleRowFastInit", "LGBM_BoosterPredictForMatSingleRowFast", "LGBM_FastConfigFree")
    missing = [name for name in functions if not hasattr(lightgbm.basic._LIB, name)]
    assert not missing, f"{version}: the C library has no {missing}; {fix}"

    sample = flights.head(3_000)
    booster = _small_booster(sample)
    assert hasattr(booster, "_handle"), f"{version}: Booster has no _handle; {fix}"
    booster.best_iteration = 20  # of 30 trees: the fast path must stop where Booster.predict does
    rows = flights[FLIGHTS.feature_names].iloc[3_000:5_000].to_dict("records")
    rows[0] = {**rows[0], "dest": "NOPE", "temp": None}
    encoder = FeatureEncoder(FLIGHTS)
    expected = booster.predict(encoder.rows(rows))
    assert not np.allclose(expected, booster.predict(encoder.rows(rows), num_iteration=30))
    try:
        scorer = SingleRowScorer(booster, len(FLIGHTS.feature_names))
    except Exception as error:
        pytest.fail(f"{version}: the one-row fast path cannot be built ({error!r}); {fix}")
    got = np.array([scorer.score(lambda buffer, row=row: encoder.row(row, buffer)) for row in rows])
    worst = float(np.max(np.abs(got - expected)))
    assert worst <= 1e-12, f"{version}: the fast path differs from Booster.predict by {worst:.3g} on {len(rows)} rows; {fix}"

    predictor = LightGBMPredictor(booster, FLIGHTS, threshold=0.5)
    predictor.score_one(rows[0])
    assert isinstance(predictor._single, SingleRowScorer), f"{version}: Predictor fell back to Booster.predict; {fix}"


def test_one_row_scores_from_many_threads_at_once(flights):
    sample = flights.head(3_000)
    predictor = LightGBMPredictor(_small_booster(sample), FLIGHTS, threshold=0.5)
    rows = sample[FLIGHTS.feature_names].tail(400).to_dict("records")
    expected = predictor.score_rows(rows)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(predictor.score_one, rows))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_one_row_falls_back_to_the_public_api_when_the_fast_path_breaks(flights, monkeypatch, caplog):
    def broken(*args):
        raise ImportError("cannot import name '_LIB' from 'lightgbm.basic'")

    monkeypatch.setattr(predictor_module, "SingleRowScorer", broken)
    sample = flights.head(3_000)
    booster = _small_booster(sample)
    predictor = LightGBMPredictor(booster, FLIGHTS, threshold=0.5)
    rows = sample[FLIGHTS.feature_names].tail(200).to_dict("records")
    with caplog.at_level(logging.WARNING, logger=predictor_module.__name__):
        got = [predictor.score_one(row) for row in rows]
    assert isinstance(predictor._single, PublicRowScorer) and "fast path unavailable" in caplog.text
    assert lgb.__version__ in caplog.text
    np.testing.assert_allclose(got, booster.predict(predictor.encoder.rows(rows)), rtol=0, atol=1e-12)


def _evidence(**overrides) -> Evidence:
    metrics = {"auc": 0.70, "f1": 0.50, "recall": 0.60, "brier": 0.17}
    values = dict(challenger=metrics, champion=None, holdout_rows=5_000, label_coverage=None,
                  days_since_promotion=None, deterministic=True, latency_ms=0.1)  # fmt: skip
    return Evidence(**(values | overrides))


def _gate(gates, name):
    return next(g for g in gates if g.name == name)


def test_without_champion_the_floors_decide():
    gates = evaluate_gates(_evidence(), GateConfig(), auc_floor=0.62, recall_floor=0.35)
    assert all_passed(gates)
    for name in ("auc_improvement", "brier_degradation", "auc_degradation", "cooldown", "label_coverage"):
        assert _gate(gates, name).verdict == Verdict.NOT_APPLICABLE and _gate(gates, name).detail
    low = evaluate_gates(_evidence(challenger={"auc": 0.6, "f1": 0.5, "recall": 0.2, "brier": 0.2}), GateConfig(), 0.62, 0.35)
    assert failed(low) == ["auc_floor", "recall_floor"]


def test_comparative_gates():
    champion = {"auc": 0.696, "f1": 0.55, "recall": 0.6, "brier": 0.15}
    gates = evaluate_gates(_evidence(champion=champion, days_since_promotion=3.0), GateConfig(), 0.62, 0.35)
    assert failed(gates) == ["brier_degradation", "cooldown"]  # AUC +0.57 % passes (F1 is lower); Brier +0.02 and 3 days fail
    assert _gate(gates, "auc_improvement").value == pytest.approx(0.004 / 0.696)
    close = evaluate_gates(_evidence(champion={**champion, "auc": 0.697, "brier": 0.17}, days_since_promotion=30.0),
                           GateConfig(), 0.62, 0.35)  # fmt: skip
    assert failed(close) == ["auc_improvement"]  # +0.43 % < 0.5 %
    by_f1 = GateConfig(improvement_metric="f1", min_improvement=0.02)
    f1_worse = evaluate_gates(_evidence(champion={**champion, "brier": 0.17}, days_since_promotion=30.0), by_f1, 0.62, 0.35)
    assert failed(f1_worse) == ["f1_improvement"] and _gate(f1_worse, "f1_improvement").value == pytest.approx(-0.05 / 0.55)
    ranks_worse = evaluate_gates(_evidence(champion={**champion, "f1": 0.49, "auc": 0.71, "brier": 0.17}, days_since_promotion=30.0),
                                 by_f1, 0.62, 0.35)  # fmt: skip
    assert failed(ranks_worse) == ["auc_degradation"]  # better F1, same Brier, AUC 0.70 < 0.71
    assert _gate(ranks_worse, "auc_degradation").value == pytest.approx(0.01)
    with pytest.raises(ValueError, match="improvement_metric must be one of"):
        GateConfig(improvement_metric="accuracy")


def test_operational_gates():
    gates = evaluate_gates(_evidence(deterministic=False, latency_ms=9.0, holdout_rows=10, label_coverage=0.1), GateConfig(), 0.5, 0)
    assert failed(gates) == ["holdout_rows", "deterministic", "one_row_latency", "label_coverage"]


def test_gates_table_reads_as_people_write_numbers():
    champion = {"auc": 0.696, "f1": 0.55, "recall": 0.6, "brier": 0.15}
    evidence = _evidence(champion=champion, holdout_rows=49_102, label_coverage=0.3125, days_since_promotion=3.0,
                         latency_ms=0.0171, challenger={"auc": 0.70, "f1": 0.5, "recall": 0.6, "brier": 0.17000234})
    table = gates_markdown(evaluate_gates(evidence, GateConfig(min_holdout_rows=20_000), 0.62, 0.35))
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:3] for line in table.splitlines()[2:]}
    assert rows["holdout_rows"] == ["49,102", ">= 20,000"]  # not 4.91e+04
    assert rows["auc_floor"] == ["0.7000", ">= 0.62"]
    assert rows["label_coverage"] == ["31.25%", ">= 30%"]  # a share
    assert rows["auc_improvement"] == ["0.57%", ">= 0.5%"]  # relative to the champion
    assert rows["brier_degradation"] == ["0.0200", "<= 0.01"]
    assert rows["deterministic"][0] == "1" and rows["one_row_latency"] == ["0.0171", "<= 2 ms"]
    assert rows["cooldown"] == ["3.00", ">= 7 days"]
    assert "e+" not in table and "e-" not in table
    close = _evidence(challenger={"auc": 0.70, "f1": 0.5, "recall": 0.6, "brier": 0.17},
                      champion={**champion, "auc": 0.69997654})
    assert "| auc_degradation | -0.00002346 |" in gates_markdown(evaluate_gates(close, GateConfig(), 0.62, 0.35))
    no_champion = gates_markdown(evaluate_gates(_evidence(), GateConfig(), 0.62, 0.35))
    assert "| auc_improvement | n/a | >= 0.5% | **n/a** |" in no_champion and "| label_coverage | n/a |" in no_champion


CHAMPION = {"auc": 0.70, "f1": 0.50, "recall": 0.60, "brier": 0.17}


def test_a_champion_under_the_floor_never_blocks_a_challenger_that_beats_it():
    broken = {"auc": 0.383, "f1": 0.30, "recall": 0.20, "brier": 0.30}
    weak = {"auc": 0.539, "f1": 0.35, "recall": 0.40, "brier": 0.24}
    gates = evaluate_gates(_evidence(challenger=weak, champion=broken, days_since_promotion=1.0), GateConfig(), 0.62, 0.35)
    assert all_passed(gates)
    assert _gate(gates, "auc_floor").detail.startswith("rescue: the champion's AUC 0.3830 is under the floor 0.62")
    assert _gate(gates, "cooldown").verdict == Verdict.NOT_APPLICABLE  # a broken champion has no cooldown
    worse = {**weak, "auc": 0.30}  # under the floor and not better than the broken champion: no rescue
    assert "auc_floor" in failed(evaluate_gates(_evidence(challenger=worse, champion=broken), GateConfig(), 0.62, 0.35))


def _live(verdict: str, difference: float = 0.03, rows: int = 2_000) -> LiveComparison:
    return LiveComparison(rows, rows // 5, 0.68, 0.68 + difference, difference, difference - 0.02, difference + 0.02,
                          0.01, verdict)  # fmt: skip


def test_live_evidence_required_waits_decides_and_lifts_the_cooldown():
    better = {"auc": 0.75, "f1": 0.55, "recall": 0.62, "brier": 0.16}
    fresh = dict(challenger=better, champion=CHAMPION, days_since_promotion=30.0)
    required = GateConfig(live_evidence="required")
    waiting = evaluate_gates(_evidence(**fresh), required, 0.62, 0.35)  # no shadow rows yet
    assert _gate(waiting, "live_evidence").verdict == Verdict.PENDING and not all_passed(waiting)
    assert failed(waiting) == [] and awaits_live_evidence(waiting, required)
    worse_live = evaluate_gates(_evidence(**fresh, live=_live(CHAMPION_BETTER, -0.03)), required, 0.62, 0.35)
    assert failed(worse_live) == ["live_evidence"] and not awaits_live_evidence(worse_live, required)
    no_difference = evaluate_gates(_evidence(**fresh, live=_live(NO_CLEAR_DIFFERENCE, 0.0)), required, 0.62, 0.35)
    assert all_passed(no_difference)
    recent = fresh | {"days_since_promotion": 1.0}
    cooling = evaluate_gates(_evidence(**recent, live=_live(NO_CLEAR_DIFFERENCE, 0.0)), required, 0.62, 0.35)
    assert failed(cooling) == ["cooldown"] and awaits_live_evidence(cooling, required)
    early = evaluate_gates(_evidence(**recent, live=_live(CHALLENGER_BETTER)), required, 0.62, 0.35)
    assert all_passed(early) and _gate(early, "cooldown").detail.startswith("early promotion: live evidence favours")


def test_live_evidence_advisory_never_blocks_and_off_is_ignored():
    better = {"auc": 0.75, "f1": 0.55, "recall": 0.62, "brier": 0.16}
    fresh = dict(challenger=better, champion=CHAMPION, days_since_promotion=30.0, live=_live(CHAMPION_BETTER, -0.03))
    advisory = evaluate_gates(_evidence(**fresh), GateConfig(), 0.62, 0.35)  # advisory is the default
    assert all_passed(advisory) and _gate(advisory, "live_evidence").verdict == Verdict.WARN
    assert _gate(advisory, "live_evidence").detail.startswith("champion better: live AUC 0.6500 vs champion 0.6800 "
                                                              "on the same 2,000 labelled rows")
    recent = dict(challenger=better, champion=CHAMPION, days_since_promotion=1.0)
    cooling = evaluate_gates(_evidence(**recent), GateConfig(), 0.62, 0.35)
    assert failed(cooling) == ["cooldown"] and awaits_live_evidence(cooling, GateConfig())  # waits, not rejected
    off = GateConfig(live_evidence="off")
    ignored = evaluate_gates(_evidence(**recent, live=_live(CHALLENGER_BETTER)), off, 0.62, 0.35)
    assert failed(ignored) == ["cooldown"] and not awaits_live_evidence(ignored, off)
    assert _gate(ignored, "live_evidence").verdict == Verdict.NOT_APPLICABLE


def test_a_waiting_challenger_is_evaluated_again_only_when_that_can_decide_it():
    required, advisory = GateConfig(live_evidence="required"), GateConfig()
    assert reevaluation_due(None, required, cooldown_over=True) is None  # nothing to decide with yet
    assert reevaluation_due(_live(TOO_FEW_ROWS), required, cooldown_over=True) is None
    assert reevaluation_due(_live(NO_CLEAR_DIFFERENCE, 0.0), required, cooldown_over=False) is None
    assert reevaluation_due(_live(NO_CLEAR_DIFFERENCE, 0.0), required, cooldown_over=True)[0] == "cooldown-over"
    assert reevaluation_due(_live(CHAMPION_BETTER, -0.03), required, cooldown_over=False)[0] == "live-worse"
    key, reason = reevaluation_due(_live(CHALLENGER_BETTER), advisory, cooldown_over=False)
    assert key == "live-better" and "on the same 2,000 labelled rows" in reason
    assert reevaluation_due(None, advisory, cooldown_over=True)[0] == "cooldown-over"
    assert reevaluation_due(None, advisory, cooldown_over=False) is None
    assert reevaluation_due(_live(CHALLENGER_BETTER), GateConfig(live_evidence="off"), cooldown_over=True) is None


def test_an_emergency_or_a_forced_decision_skips_only_the_cooldown():
    better = {"auc": 0.75, "f1": 0.55, "recall": 0.62, "brier": 0.16}
    recent = dict(challenger=better, champion=CHAMPION, days_since_promotion=1.0)
    assert failed(evaluate_gates(_evidence(**recent), GateConfig(), 0.62, 0.35)) == ["cooldown"]
    emergency = evaluate_gates(_evidence(**recent, champion_realised_auc=0.55), GateConfig(), 0.62, 0.35)
    assert all_passed(emergency) and "emergency: the champion's realised AUC 0.5500" in _gate(emergency, "cooldown").detail
    healthy = evaluate_gates(_evidence(**recent, champion_realised_auc=0.70), GateConfig(), 0.62, 0.35)
    assert failed(healthy) == ["cooldown"]
    forced = evaluate_gates(_evidence(**recent, forced=True), GateConfig(), 0.62, 0.35)
    assert all_passed(forced) and _gate(forced, "cooldown").detail == "a person's decision with force"
    worse = {**CHAMPION, "auc": 0.65}
    assert "auc_improvement" in failed(evaluate_gates(_evidence(**(recent | {"challenger": worse}), forced=True),
                                                      GateConfig(), 0.62, 0.35))  # force skips the cooldown alone
