"""Labelled rows from the history and from the prediction log (a real SQLite store)."""

import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

from retrain_platform.core.validation import check_schema
from retrain_platform.datasets import FLIGHTS
from retrain_platform.datasets.sources import history_rows, log_rows, training_rows
from retrain_platform.store import PredictionStore

from .conftest import make_settings, run_job


def log_flights(store: PredictionStore, flights: pd.DataFrame, label: bool = True, send_context: bool = True) -> list[str]:
    """Record flights as serving does (features as JSON) and label them."""
    ids = []
    for row in flights.to_dict("records"):
        features = {name: (None if pd.isna(row[name]) else row[name]) for name in FLIGHTS.feature_names}
        if send_context:
            features |= {"flight_id": int(row["flight_id"]), "scheduled_departure": row["scheduled_departure"].isoformat()}
        pid = str(uuid.uuid4())
        store.record({"prediction_id": pid, "created_at": datetime.now(UTC), "model_version": "1", "features": features,
                      "score": 0.3, "predicted_label": 0, "latency_ms": 0.1})  # fmt: skip
        ids.append((pid, int(row["arrived_late"])))
    store.flush()
    if label:
        for pid, outcome in ids:
            store.add_label(pid, outcome)
    return [pid for pid, _ in ids]


@pytest.fixture
def store(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}")
    yield store
    store.close()


def test_history_is_cut_at_until():
    rows = history_rows(FLIGHTS, until="2013-03-01")
    assert rows[FLIGHTS.timestamp].max() < pd.Timestamp("2013-03-01") and len(rows) > 50_000


def test_labelled_log_becomes_rows_of_the_dataset(store):
    march = FLIGHTS.load().query("scheduled_departure >= '2013-03-01'").head(300)
    log_flights(store, march.head(200))
    log_flights(store, march.tail(100), label=False)  # unlabelled: not training rows
    rows = log_rows(store, FLIGHTS)
    assert list(rows.columns) == FLIGHTS.columns and len(rows) == 200
    expected = march.head(200).reset_index(drop=True)
    pd.testing.assert_series_equal(rows["flight_id"].reset_index(drop=True), expected["flight_id"], check_dtype=False)
    assert (rows["scheduled_departure"].reset_index(drop=True) == expected["scheduled_departure"]).all()
    assert (rows["arrived_late"].reset_index(drop=True) == expected["arrived_late"]).all()
    assert check_schema(rows.reset_index(drop=True), FLIGHTS).passed


def test_log_without_context_falls_back_to_prediction_id_and_time(store):
    log_flights(store, FLIGHTS.load().head(20), send_context=False)
    rows = log_rows(store, FLIGHTS)
    assert rows["flight_id"].is_unique and len(rows) == 20
    assert rows["scheduled_departure"].min() > pd.Timestamp("2020-01-01")  # the prediction's own time


def test_training_rows_join_history_and_log_once(store):
    first_of_march = FLIGHTS.load().query("scheduled_departure >= '2013-03-01'").head(150)
    log_flights(store, first_of_march)
    rows = training_rows(FLIGHTS, history_until="2013-03-02", store=store)  # the history has them too
    assert rows["flight_id"].is_unique
    assert len(rows) == len(history_rows(FLIGHTS, until="2013-03-02"))
    assert len(training_rows(FLIGHTS, history_until="2013-03-01", store=store)) == len(
        history_rows(FLIGHTS, until="2013-03-01")) + len(first_of_march)


def test_retrain_reads_the_prediction_log_and_gates_on_label_coverage(tmp_path, instance):
    """The production loop: history until March, then served-and-labelled March flights."""
    settings = make_settings(tmp_path, history_until="2013-03-01", train_on_prediction_log=True)
    store = PredictionStore(settings.store_url)
    march = FLIGHTS.load().query("'2013-03-01' <= scheduled_departure < '2013-03-08'")
    log_flights(store, march.iloc[: len(march) // 2])
    log_flights(store, march.iloc[len(march) // 2 :], label=False)
    store.close()
    from retrain_platform.definitions import build_definitions

    result = run_job(build_definitions(settings), instance, raw_data={"window_days": 21},
                     candidate_model={"max_rounds": 10}, evaluation_report={"auc_floor": 0.5, "recall_floor": 0.0})  # fmt: skip
    assert result.success
    raw = result.output_for_node("raw_data")
    assert raw[FLIGHTS.timestamp].max() >= pd.Timestamp("2013-03-04")  # the log's rows are in
    assert raw[FLIGHTS.timestamp].max() < pd.Timestamp("2013-03-08")
    gates = result.output_for_node("evaluation_report")["gates"]
    coverage = next(g for g in gates if g["name"] == "label_coverage")
    assert coverage["verdict"] == "pass" and coverage["value"] == pytest.approx(0.5, abs=0.01)
