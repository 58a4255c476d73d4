"""Drift monitoring on a real prediction log: the sensor's verdicts, the report, the time series."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from retrain_platform.core import clock
from retrain_platform.monitoring.assets import drift_report
from retrain_platform.monitoring.health import build_model_health
from retrain_platform.resources import Dataset
from retrain_platform.datasets import FLIGHTS
from retrain_platform.definitions import build_definitions
from retrain_platform.registry import ModelRegistry
from retrain_platform.store import PredictionStore
from retrain_platform.monitoring.log import MonitoringLog

from .conftest import make_settings, pythonic_resources, run_job


def serve(settings, flights: pd.DataFrame, labelled: bool = False, zone: str = "", served_at: datetime | None = None) -> list[str]:
    """Log flights as serving does: the production model's scores, features as JSON (event times
    with `zone` appended, as a client may send them)."""
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    version = registry.production_version()
    predictor = registry.load_predictor(version)
    scores = predictor.scores(flights)
    store = PredictionStore(settings.store_url)
    rows = []
    for row, score in zip(flights.to_dict("records"), scores, strict=True):
        features = {name: (None if pd.isna(row[name]) else row[name]) for name in FLIGHTS.feature_names}
        features |= {"flight_id": int(row["flight_id"]), "scheduled_departure": row["scheduled_departure"].isoformat() + zone}
        rows.append({"prediction_id": str(uuid.uuid4()), "created_at": served_at or datetime.now(UTC), "model_version": version,
                     "features": features, "score": float(score), "predicted_label": int(score >= predictor.threshold)})  # fmt: skip
    store.record_many(rows)
    store.flush()
    if labelled:
        for row, flight in zip(rows, flights.to_dict("records"), strict=True):
            store.add_label(row["prediction_id"], int(flight["arrived_late"]))
    store.close()
    return [row["prediction_id"] for row in rows]


@pytest.fixture(scope="module")
def served_home(tmp_path_factory):
    """A production model trained on February, and a Dagster instance that ran it."""
    tmp_path = tmp_path_factory.mktemp("monitoring")
    # No retrain cooldown: the fixture's own retrain would otherwise hold the sensor back for a day.
    # Drift alone asks for a retrain here, so that the sensor's hold-back rules can be seen; the
    # default (drift must come with an expected loss) has its own test.
    settings = make_settings(tmp_path, drift_min_new_predictions=300, drift_window_rows=2_000, retrain_cooldown_hours=0,
                             drift_retrains_alone=True)  # fmt: skip
    with dg.instance_for_test() as instance:
        result = run_job(build_definitions(settings), instance, raw_data={"window_days": 28, "window_end": "2013-02-28"},
                         candidate_model={"max_rounds": 30}, evaluation_report={"auc_floor": 0.5, "recall_floor": 0.0})  # fmt: skip
        assert result.success
        yield settings, instance


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("drift_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=pythonic_resources(defs), definitions=defs)
    return sensor.evaluate_tick(context)


def flights_between(start: str, end: str, n: int, seed: int = 0) -> pd.DataFrame:
    frame = FLIGHTS.load()
    times = frame[FLIGHTS.timestamp]
    return frame[(times >= start) & (times < end)].sample(n, random_state=seed).sort_values(FLIGHTS.timestamp)


def test_sensor_stays_quiet_on_familiar_traffic_and_fires_on_drift(served_home):
    settings, instance = served_home
    defs = build_definitions(settings)
    assert "no production model" not in str(tick(defs, instance).skip_message)
    assert "0 new predictions" in tick(defs, instance).skip_message

    serve(settings, flights_between("2013-02-01", "2013-02-25", 1_500))  # what the model learned from
    quiet = tick(defs, instance)
    assert not quiet.run_requests and quiet.skip_message.startswith("ok")
    assert "0 new predictions" in tick(defs, instance, cursor=quiet.cursor).skip_message

    serve(settings, flights_between("2013-07-01", "2013-07-15", 2_000, seed=1))  # summer: weather drifts
    fired = tick(defs, instance, cursor=quiet.cursor)
    [request] = fired.run_requests
    assert request.tags["retrain_platform/trigger"] == "drift"
    assert "temp" in request.tags["retrain_platform/reason"]
    assert {key.to_user_string() for key in request.asset_selection} == {"drift_report", "retraining_decision"}
    assert json.loads(fired.cursor)["newest"] == PredictionStore(settings.store_url).newest_times(1)[0].isoformat()

    log = MonitoringLog(settings.store_url)
    history = log.history()
    log.close()
    assert history["level"].iloc[0] == "ok" and history["level"].iloc[-1] in ("flag", "alert")
    assert history["event_time"].iloc[-1].month == 7
    assert history["n_drifted"].iloc[0] == 0 and history["drifted_importance"].iloc[-1] >= 0.10
    assert history["evidently_drifted"].iloc[-1] >= history["n_drifted"].iloc[-1]  # raw scores kept beside


def test_drift_without_an_expected_loss_does_not_retrain_by_default(served_home):
    settings, instance = served_home
    defaults = build_definitions(settings.model_copy(update={"drift_retrains_alone": False}))
    serve(settings, flights_between("2013-07-01", "2013-07-15", 600, seed=11))
    quiet = tick(defaults, instance)
    assert not quiet.run_requests
    assert "temp" in quiet.skip_message and "no retrain for drift alone" in quiet.skip_message
    log = MonitoringLog(settings.store_url)
    last = log.history().iloc[-1]
    log.close()
    assert last["estimated_auc_low"] <= last["estimated_auc"] <= last["estimated_auc_high"]
    assert last["promised_auc"] > 0.5  # the version's own holdout, beside the estimate


def test_a_model_past_its_age_asks_for_a_retrain_by_its_age(served_home):
    settings, instance = served_home
    quiet = settings.model_copy(update={"drift_retrains_alone": False})
    serve(settings, flights_between("2013-02-01", "2013-02-25", 600, seed=21))  # familiar traffic
    assert not tick(build_definitions(quiet), instance).run_requests
    # The same traffic, the model's data ending 2013-02-28 and the clock today: past 30 days.
    aged = build_definitions(quiet.model_copy(update={"retrain_max_model_age_days": 30.0}))
    [request] = tick(aged, instance).run_requests
    assert "the newest retrain's data is" in request.tags["retrain_platform/reason"]
    assert request.tags["retrain_platform/trigger"] == "age"  # nothing else asked: the quiet tick above


def test_persistent_drift_is_reported_once_a_day(served_home, tmp_path, monkeypatch):
    settings, instance = served_home
    defs = build_definitions(settings)
    serve(settings, flights_between("2013-07-01", "2013-07-15", 1_000, seed=4))
    first = tick(defs, instance)  # no cursor: a fresh sensor reports what it sees
    assert len(first.run_requests) == 1

    serve(settings, flights_between("2013-07-15", "2013-07-30", 1_000, seed=5))
    repeated = tick(defs, instance, cursor=first.cursor)
    assert not repeated.run_requests and "already reported at" in repeated.skip_message
    assert "next report from" in repeated.skip_message and "temp" in repeated.skip_message

    serve(settings, flights_between("2013-07-15", "2013-07-30", 1_000, seed=6))
    later = tmp_path / "clock.txt"  # the platform clock, a day later
    clock.set_simulated(later, datetime.now(UTC) + timedelta(hours=settings.drift_report_repeat_hours + 1))
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(later))
    [again] = tick(defs, instance, cursor=repeated.cursor).run_requests
    assert again.tags["retrain_platform/trigger"] == "drift"


def test_sensor_holds_back_while_a_retrain_would_be_refused(served_home, tmp_path, monkeypatch):
    settings, instance = served_home
    serve(settings, flights_between("2013-08-01", "2013-08-15", 1_000, seed=7))
    cooling = build_definitions(settings.model_copy(update={"retrain_cooldown_hours": 48.0}))
    held = tick(cooling, instance)  # the fixture's retrain ran moments ago
    assert not held.run_requests and "not retraining: cooldown" in held.skip_message
    assert "temp" in held.skip_message  # what was found is still said

    from_log = settings.model_copy(update={"train_on_prediction_log": True})  # none of the served rows has a label
    waiting = tick(build_definitions(from_log), instance)
    assert not waiting.run_requests and "waiting for labels: 0% of the last 7 days' predictions" in waiting.skip_message

    serve(settings, flights_between("2013-08-15", "2013-08-31", 1_000, seed=8), labelled=True)
    any_coverage = from_log.model_copy(update={"retrain_gates": '{"min_label_coverage": 0}'})
    little_new = tick(build_definitions(any_coverage), instance)
    assert not little_new.run_requests
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    rows = registry.window_rows(registry.version_info("1"))
    assert f"waiting for new evidence: 1,000 predictions labelled since version 1 was trained; a retrain needs {0.25 * rows:,.0f}" in little_new.skip_message
    enough = any_coverage.model_copy(update={"retrain_min_new_label_share": 1_000 / rows})
    assert len(tick(build_definitions(enough), instance).run_requests) == 1

    # A candidate trained on that evidence and rejected: the same evidence must not ask again.
    rejected = run_job(build_definitions(settings), instance, raw_data={"window_days": 28, "window_end": "2013-03-20"},
                       candidate_model={"max_rounds": 30}, evaluation_report={"min_improvement": 1.0})  # fmt: skip
    assert not rejected.success and ModelRegistry(settings.tracking_uri, FLIGHTS.model_name).production_version() == "1"
    again = tick(build_definitions(enough), instance)
    assert not again.run_requests and "0 predictions labelled since version 2 was trained" in again.skip_message

    # A maximum age counts from the newest retrain, rejected or not (its data ends 2013-03-20), not
    # from the champion (02-28): else every tick after a rejection would ask again by age.
    def said_at(day: str) -> str:
        now = tmp_path / f"clock-{day}.txt"
        clock.set_simulated(now, datetime.fromisoformat(f"{day}T12:00:00+00:00"))
        monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(now))
        # However little was labelled since: a model past its age is due, whatever else was found.
        aged = settings.model_copy(update={"drift_retrains_alone": False, "retrain_max_model_age_days": 30.0,
                                           "retrain_min_new_label_share": 0.9})  # fmt: skip
        result = tick(build_definitions(aged), instance)
        return "; ".join(r.tags["retrain_platform/reason"] for r in result.run_requests) or result.skip_message

    assert "days old (at most 30)" not in said_at("2013-04-10")  # the champion's data is 41 days old
    due = said_at("2013-04-25")
    assert "the newest retrain's data is 36 days old" in due and "waiting for new evidence" not in due
    assert "realised AUC" in due  # the finding that came first did not hold the age back
    monkeypatch.delenv(clock.CLOCK_FILE_ENV)

    log = MonitoringLog(settings.store_url)
    assert list(log.history()["source"][-5:]) == ["drift_sensor"] * 5  # every check is on record
    log.close()


def test_drift_report_writes_evidently_html_and_warns(served_home):
    settings, instance = served_home
    result = dg.materialize([drift_report], instance=instance, resources=build_definitions(settings).resources,
                            raise_on_error=False)  # fmt: skip
    assert result.success  # a warning check does not fail the run
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    metadata = result.asset_materializations_for_node("drift_report")[0].metadata
    html = Path(metadata["evidently_report"].value)
    assert html.exists() and html.stat().st_size > 100_000
    assert metadata["level"].value in ("flag", "alert")
    agree, total = metadata["evidently_agreement"].value.split()[0].split("/")
    assert int(agree) >= int(total) - 1  # same methods on the same rows (Evidently's own sampling aside)


def test_sensor_fires_on_realised_performance_below_floor(tmp_path):
    settings = make_settings(tmp_path, drift_min_new_predictions=100, retrain_cooldown_hours=0)
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        assert run_job(defs, instance, raw_data={"window_days": 28, "window_end": "2013-02-28"},
                       candidate_model={"max_rounds": 30}, evaluation_report={"auc_floor": 0.5, "recall_floor": 0.0}).success  # fmt: skip
        flights = flights_between("2013-02-01", "2013-02-25", 1_500, seed=3)  # familiar inputs
        flights = flights.assign(arrived_late=1 - flights["arrived_late"])  # the world turned upside down
        serve(settings, flights, labelled=True)
        [request] = tick(defs, instance).run_requests
        assert request.tags["retrain_platform/trigger"] == "performance"
        assert "realised AUC" in request.tags["retrain_platform/reason"]


def test_sensor_survives_event_times_with_a_zone(served_home):
    """Clients may send "2013-12-01T08:00:00Z" (valid per the API); the sensor must not stop on it."""
    settings, instance = served_home
    serve(settings, flights_between("2013-12-01", "2013-12-10", 400, seed=9), zone="Z")
    serve(settings, flights_between("2013-12-10", "2013-12-20", 400, seed=10), zone="+02:00")
    result = tick(build_definitions(settings), instance)
    assert result.run_requests or result.skip_message  # evaluated, not raised
    log = MonitoringLog(settings.store_url)
    newest = log.history()["event_time"].iloc[-1]
    log.close()
    assert (newest.month, newest.day) == (12, 19)  # "+02:00" converted to UTC, not dropped


def test_model_health_per_day_is_refreshed_as_its_labels_arrive(served_home):
    settings, instance = served_home
    defs = build_definitions(settings)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12)
    key = yesterday.strftime("%Y-%m-%d")
    ids = serve(settings, flights_between("2013-02-01", "2013-02-25", 600, seed=12), served_at=yesterday)
    sensor = defs.resolve_sensor_def("model_health_sensor")

    def evaluate(cursor=None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=pythonic_resources(defs), definitions=defs)
        return sensor.evaluate_tick(context)

    ticked = evaluate()
    [first] = ticked.run_requests  # the day is over: its health is asked for
    assert first.partition_key == key
    assert not evaluate(ticked.cursor).run_requests  # nothing changed since
    store = PredictionStore(settings.store_url)
    store.add_label(ids[0], 1)  # a late label for that day
    store.close()
    [refresh] = evaluate(ticked.cursor).run_requests
    assert refresh.partition_key == key and refresh.run_key != first.run_key

    health = build_model_health(Dataset(settings.dataset), settings.health_start_date)
    result = dg.materialize([health], instance=instance, partition_key=key, resources=defs.resources)
    metadata = {k: getattr(v, "value", v) for k, v in result.asset_materializations_for_node("model_health")[0].metadata.items()}
    assert metadata["rows"] == 600 and metadata["labelled"] == 1 and metadata["drift_level"] == "ok"
    assert metadata["estimated_auc_low"] <= metadata["estimated_auc"] <= metadata["estimated_auc_high"]
    assert metadata["promised_auc"] > 0.5
