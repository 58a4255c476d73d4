"""Several datasets in one deployment: their own assets, jobs, sensors, models, folders and logs in
one Dagster code location, and one serving process answering for each under /models/{name}/."""

import contextlib
import time
from datetime import UTC, datetime

import dagster as dg
import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision
from retrain_platform.datasets import get_spec
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.definitions import build_definitions
from retrain_platform.registry import ModelRegistry
from retrain_platform.scopes import scoped_store_url, search_path_schema
from retrain_platform.store import PredictionStore
from serving.app import create_app

from .conftest import make_settings, run_job
from .test_automation import tick
from .serving_fixtures import UvicornThread, json_rows

QUICK = {"holdout_fraction": 0.4, "max_rounds": 60}
# Every gate open: the second retrain of a dataset is promoted whatever it scores, to swap its model.
OPEN_GATES = {"cooldown_days": 0.0, "min_improvement": -1.0, "max_brier_degradation": 1.0, "max_auc_degradation": 1.0,
              "live_evidence": "off", "max_latency_ms": 1000.0}  # fmt: skip


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """breast_cancer (the default, unprefixed) and digits (prefixed) trained side by side; flights
    runs beside them without a model yet."""
    home = tmp_path_factory.mktemp("side_by_side")
    settings = make_settings(home, dataset="breast_cancer", datasets="breast_cancer,digits,flights",
                             serving_poll_seconds=0.3)  # fmt: skip
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        for job in ("retrain", "digits__retrain"):
            result = run_job(defs, instance, job, candidate_model=QUICK, evaluation_report={})
            assert result.success, (job, [e.message for e in result.all_events if e.is_failure])
        yield settings, defs, instance


def test_each_dataset_has_its_own_assets_model_and_log(deployment):
    settings, defs, instance = deployment
    materialized = {key.to_user_string() for key in instance.get_asset_keys()}
    assert {"production_model", "digits/production_model"} <= materialized
    assert not any(key.startswith("flights/") or key.startswith("breast_cancer/") for key in materialized)
    cancer = ModelRegistry(settings.tracking_uri, get_spec("breast_cancer").model_name)
    digits = ModelRegistry(settings.tracking_uri, get_spec("digits").model_name)
    assert cancer.production_version() == "1" and digits.production_version() == "1"
    assert ModelRegistry(settings.tracking_uri, get_spec("flights").model_name).production_version() is None
    # Each run tracked in its dataset's own experiment.
    runs = {run.job_name: run for run in instance.get_runs()}
    assert set(runs) == {"retrain", "digits__retrain"}
    # The scoped log is a file of its own under datasets/digits/, beside the default's.
    assert scoped_store_url(settings.store_url, "digits").endswith("/datasets/digits/predictions.db")


def test_a_dataset_decision_goes_to_its_own_inbox_and_meets_its_own_policy(deployment):
    settings, defs, instance = deployment

    def decide(dataset: str):
        folder = DecisionFolder(settings.decisions_dir / "datasets" / dataset)
        folder.drop(RetrainingDecision(decision_date=clock.now(), retrain=True, reason="a person asked",
                                       trigger="manual", dataset=dataset))  # fmt: skip
        return tick(defs, instance, name=f"{dataset}__decision_file_sensor")

    # digits retrained a moment ago: its cooldown refuses. flights never retrained: its retrain goes,
    # whatever the other datasets did.
    refused = decide("digits")
    assert not refused.run_requests and "cooldown" in refused.skip_message
    [request] = decide("flights").run_requests
    assert defs.resolve_sensor_def("flights__decision_file_sensor").job_name == "flights__retrain"
    assert request.run_config["ops"]["raw_data"]["config"]["window_days"] == settings.retrain_window_days
    # The default dataset's inbox saw neither.
    assert tick(defs, instance).skip_message == "no decision files in the inbox"


def test_one_serving_process_serves_each_dataset_and_swaps_each_model_alone(deployment, monkeypatch):
    settings, defs, instance = deployment
    monkeypatch.setenv("RETRAIN_ADMIN_TOKEN", "side-by-side")
    cancer_rows = json_rows(get_spec("breast_cancer").load().head(3), get_spec("breast_cancer"))
    digit_rows = json_rows(get_spec("digits").load().head(3), get_spec("digits"))
    with UvicornThread(create_app(settings)) as serving, httpx.Client(base_url=serving.url, timeout=30) as client:
        # The default dataset at the root paths and under its name; the other one under its name.
        root = client.post("/predict", json=cancer_rows[0])
        named = client.post("/models/breast_cancer/predict", json=cancer_rows[0])
        assert root.status_code == named.status_code == 200 and root.json()["probability"] == named.json()["probability"]
        digit = client.post("/models/digits/predict", json=digit_rows[0])
        assert digit.status_code == 200, digit.text
        batch = client.post("/models/digits/predict/batch", json={"rows": digit_rows}).json()
        assert batch["count"] == 3 and batch["model_version"] == "1"
        # Each request is checked against its own dataset's schema: a digits row is not a breast_cancer one.
        wrong = client.post("/models/breast_cancer/predict", json=digit_rows[0])
        assert wrong.status_code == 422 and "column_0" in wrong.text
        # A dataset without a model is a 503 for it alone; an unknown name is a 404 naming the known.
        assert client.post("/models/flights/predict", json={}).status_code in (422, 503)
        assert client.get("/models/flights/model-info").status_code == 503
        unknown = client.post("/models/nope/predict", json={})
        assert unknown.status_code == 404 and "breast_cancer, digits, flights" in unknown.json()["detail"]
        listed = {m["dataset"]: m for m in client.get("/models").json()}
        assert (listed["breast_cancer"]["model_version"], listed["digits"]["model_version"]) == ("1", "1")
        assert listed["flights"]["model_version"] is None

        # Labels go to the dataset's own log: a digits prediction is unknown to breast_cancer's.
        headers = {"Authorization": "Bearer side-by-side"}
        label = {"prediction_id": digit.json()["prediction_id"], "label": 1}
        assert client.post("/models/breast_cancer/feedback", json=label, headers=headers).status_code == 404
        assert client.post("/models/digits/feedback", json=label, headers=headers).status_code == 201

        # A second digits model is promoted: digits swaps to it, breast_cancer's model stays loaded as it was.
        cancer_loaded = client.get("/model-info").json()["loaded_at"]
        second = run_job(defs, instance, "digits__retrain", candidate_model={**QUICK, "num_leaves": 4},
                         evaluation_report=OPEN_GATES)  # fmt: skip
        assert second.success, [e.message for e in second.all_events if e.is_failure]
        deadline = time.monotonic() + 30
        while client.get("/models/digits/model-info").json()["version"] != "2":
            assert time.monotonic() < deadline, "digits did not swap to version 2"
            time.sleep(0.2)
        assert client.post("/models/digits/predict", json=digit_rows[0]).json()["model_version"] == "2"
        cancer = client.get("/model-info").json()
        assert (cancer["version"], cancer["loaded_at"]) == ("1", cancer_loaded)

    # What each answered is in its own log.
    for scope, expected in (("", 2), ("digits", 5)):
        store = PredictionStore(scoped_store_url(settings.store_url, scope))
        try:
            logged = store.latest_predictions(100)
        finally:
            store.close()
        assert len(logged) == expected, (scope, logged)
    assert isinstance(logged, pd.DataFrame)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_dataset_s_log_is_its_own_on_either_database(backend, request, tmp_path):
    from .serving_fixtures import postgres_store_url

    base = f"sqlite:///{tmp_path / 'predictions.db'}"
    with (postgres_store_url(request.getfixturevalue("postgres_url")) if backend == "postgres"
          else contextlib.nullcontext(base)) as url:  # fmt: skip
        stores = {scope: PredictionStore(scoped_store_url(url, scope), batch_size=100, flush_interval=60)
                  for scope in ("", "digits")}  # fmt: skip
        try:
            for scope, store in stores.items():
                store.record({"prediction_id": f"{scope or 'default'}-1", "created_at": datetime.now(UTC),
                              "model_version": "1", "features": {"x": 1}, "score": 0.5, "predicted_label": 1})  # fmt: skip
                assert store.flush() == 1
            for scope, store in stores.items():
                assert store.latest_predictions(10)["prediction_id"].tolist() == [f"{scope or 'default'}-1"]
            assert stores["digits"].add_label("digits-1", 1).model_version == "1"
        finally:
            for store in stores.values():
                store.close()
        if backend == "postgres":  # the dataset's schema sits beside the test's own; dropped with it here
            schema = search_path_schema(scoped_store_url(url, "digits"))
            assert schema.endswith("__digits")
            with sa.create_engine(url).begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


def test_each_dataset_has_its_retrain_page_linking_the_others(deployment):
    settings, _, _ = deployment
    with UvicornThread(create_app(settings)) as serving, httpx.Client(base_url=serving.url, timeout=30) as client:
        root, digits = client.get("/retrain").text, client.get("/models/digits/retrain").text
        assert "<h1>Retrain retrain-breast_cancer</h1>" in root and "<code>retrain</code>" in root
        assert "<h1>Retrain retrain-digits</h1>" in digits and "<code>digits__retrain</code>" in digits
        assert '<a href="/models/digits/retrain">digits</a>' in root and "<b>breast_cancer</b>" in root
        assert '<a href="/models/breast_cancer/retrain">breast_cancer</a>' in digits
        # Its health is of its own model.
        served = client.get("/models/digits/model-info").json()["version"]
        assert client.get("/models/digits/retrain/health").json()["model_version"] == served
