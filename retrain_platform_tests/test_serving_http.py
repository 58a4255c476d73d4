"""Serving over real HTTP: uvicorn on a free port, MLflow's tracking server over a temporary store
holding two real models, a real SQLite file (and PostgreSQL) for the prediction log.

Launching is tested against a stand-in for Dagster: a small GraphQL endpoint that checks every
query against Dagster's real GraphQL schema and answers like Dagster does, without running training.
What a finished run did is read from Dagster's real webserver over real runs of the retrain job.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from retrain_platform.core.decisions import RetrainingDecision
from retrain_platform.datasets import FLIGHTS, get_spec
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.monitoring.log import MonitoringLog
from retrain_platform.names import MODEL_TAG, TRIGGER_TAG
from retrain_platform.registry import CHALLENGER
from retrain_platform.settings import Settings
from retrain_platform.store import PredictionStore
from retrain_platform_tests.serving_fixtures import (
    UvicornThread,
    free_port,
    postgres_store_url,
    stored_prediction,
)
from serving.app import create_app
from serving.health_summary import DECISIONS_READ, newest_decisions
from serving.ids import prediction_id, prediction_ids
from serving.model_holder import ModelHolder
from serving.schemas import example_row

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Serving settings for tests: a quick registry poll and store flush, a smaller body limit.
FAST = {"serving_poll_seconds": 0.3, "store_flush_seconds": 0.1, "serving_max_body_bytes": 8 * 1024 * 1024}


class FakeDagster:
    """Answers launchRun / runOrError like dagster-webserver, after validating the query
    against the real schema from dagster-graphql."""

    def __init__(self):
        from dagster_graphql.schema import create_schema
        from graphql import parse, validate

        schema = create_schema().graphql_schema
        self.calls: list[dict] = []
        self.runs: dict[str, str] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                errors = validate(schema, parse(body["query"]))
                fake.calls.append({"path": self.path, **body, "errors": [e.message for e in errors]})
                if errors:
                    answer = {"errors": [{"message": e.message} for e in errors]}
                else:
                    answer = {"data": fake.answer(body["query"], body["variables"])}
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, query: str, variables: dict) -> dict:
        if "launchRun" in query:
            selector = variables["executionParams"]["selector"]
            wanted = {"repositoryLocationName": "retrain_platform", "repositoryName": "__repository__", "jobName": "retrain"}
            if selector != wanted:
                return {"launchRun": {"__typename": "PipelineNotFoundError", "message": f"Could not find Pipeline {selector}"}}
            run_id = str(uuid.uuid4())
            self.runs[run_id] = "STARTED"
            return {"launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": run_id, "status": "QUEUED"}}}
        run_id = variables["runId"]
        if run_id not in self.runs:
            return {"runOrError": {"__typename": "RunNotFoundError", "message": f"Run {run_id} could not be found."}}
        return {"runOrError": {"__typename": "Run", "runId": run_id, "status": self.runs[run_id]}}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def dagster():
    fake = FakeDagster()
    yield fake
    fake.close()


@pytest.fixture(scope="module", autouse=True)
def admin_token():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETRAIN_ADMIN_TOKEN", TOKEN)
        yield


def settings_for(folder, mlflow_server, **overrides) -> Settings:
    values = {"home": folder, "mlflow_tracking_uri": mlflow_server.url,
              "prediction_store_url": f"sqlite:///{folder / 'predictions.db'}", **FAST, **overrides}  # fmt: skip
    return Settings(**values)


@pytest.fixture(scope="module")
def server(tmp_path_factory, mlflow_server, dagster):
    settings = settings_for(tmp_path_factory.mktemp("serving"), mlflow_server, dagster_url=dagster.url)
    with UvicornThread(create_app(settings)) as running:
        running.settings = settings
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def served_versions(models) -> tuple[str, str | None]:
    production = models.registry.production_version()
    challenger = models.registry.alias_version(CHALLENGER)
    return production, (challenger if challenger != production else None)


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- predictions ----------------------------------------------------------------------------------
def test_predict_scores_with_the_production_model_and_logs_a_shadow_score(client, server, models):
    production, challenger = served_versions(models)
    row = models.rows[0]
    response = client.post("/predict", json=row)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == production == response.headers["X-Model-Version"]
    uuid.UUID(body["prediction_id"])
    expected = models.registry.load_predictor(production).score_rows([row])[0]
    assert body["probability"] == pytest.approx(expected, abs=1e-12)
    assert body["label"] == int(body["probability"] >= body["threshold"])

    store = PredictionStore(server.settings.store_url)
    logged = wait_for(lambda: stored_prediction(store, body["prediction_id"]), what="the prediction in the store")
    store.close()
    # The spec's id and event time are logged too, as null when the client does not send them.
    assert logged["model_version"] == production
    assert logged["features"] == {**row, "flight_id": None, "scheduled_departure": None}
    assert logged["score"] == pytest.approx(body["probability"])
    assert logged["shadow_version"] == challenger
    if challenger:
        shadow = models.registry.load_predictor(challenger).score_rows([row])[0]
        assert logged["shadow_score"] == pytest.approx(shadow, abs=1e-12)


def test_explain_returns_each_features_part_in_the_log_odds(client, models):
    rows = models.rows[:3]
    one = client.post("/predict", params={"explain": "true"}, json=rows[0])
    assert one.status_code == 200, one.text
    batch = client.post("/predict/batch", params={"explain": "true"}, json={"rows": rows})
    assert batch.status_code == 200, batch.text
    answers = [one.json(), *batch.json()["predictions"]]
    for answer in answers:
        explanation = answer["explanation"]
        assert set(explanation["contributions"]) == set(FLIGHTS.feature_names)
        log_odds = explanation["bias"] + sum(explanation["contributions"].values())
        assert 1 / (1 + math.exp(-log_odds)) == pytest.approx(answer["probability"], abs=1e-9)
    assert answers[0]["explanation"] == answers[1]["explanation"]  # the same row, the same reasons
    assert "explanation" not in client.post("/predict", json=rows[0]).json()  # only when asked
    documented = client.get("/openapi.json").json()["paths"]
    for path in ("/predict", "/predict/batch"):
        assert [p["name"] for p in documented[path]["post"]["parameters"]] == ["explain"]


BAD_REQUESTS = {
    "bad json": (b'{"day_of_week": 1,', None, "json_invalid"),
    "not utf-8": (b"\x80\xff{}", None, "json_invalid"),
    "missing field": ({"drop": "carrier"}, "carrier", "missing"),
    "out of range": ({"dep_hour": 24}, "dep_hour", "less_than_equal"),
    "below range": ({"distance": 0}, "distance", "greater_than_equal"),
    "unknown category": ({"dest": "XXX"}, "dest", "literal_error"),
    "wrong type": ({"distance": "far"}, "distance", "float_type"),
    "fractional integer": ({"day_of_week": 2.5}, "day_of_week", "int_type"),
    "not a number": (b"NaN", "temp", "finite_number"),
    "unknown field": ({"dep_delay": 12}, "dep_delay", "extra_forbidden"),
    "id beyond 64 bits": ({"flight_id": 2**63}, "flight_id", "less_than_equal"),
    "id below 64 bits": ({"flight_id": -(2**63) - 1}, "flight_id", "greater_than_equal"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_malformed_request_is_422_naming_the_field(client, models, case):
    change, field, error_type = BAD_REQUESTS[case]
    row = dict(models.rows[1])
    if change == b"NaN":
        content = json.dumps({**row, "temp": float("nan")}).encode()  # Python's json writes NaN
    elif isinstance(change, bytes):
        content = change
    else:
        row.pop(change.pop("drop", None), None)
        content = json.dumps({**row, **change}).encode()
    response = client.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert errors[0]["type"] == error_type
    if field:
        assert errors[0]["loc"] == ["body", field]
    else:
        assert errors[0]["loc"][0] == "body" and len(json.dumps(errors)) < 1_000  # the body is quoted, not echoed


def test_nullable_fields_may_be_null_or_absent(client, server, models):
    row = {k: v for k, v in models.rows[2].items() if k not in ("wind_gust", "pressure")} | {"temp": None}
    response = client.post("/predict", json=row)
    assert response.status_code == 200
    store = PredictionStore(server.settings.store_url)
    logged = wait_for(lambda: stored_prediction(store, response.json()["prediction_id"]), what="the prediction in the store")
    store.close()
    # Logged complete: an absent field is a null, so the log reads back with every spec column.
    assert {logged["features"][name] for name in ("wind_gust", "pressure", "temp")} == {None}


def test_batch_scores_every_row_with_its_own_id(client, models):
    production, _ = served_versions(models)
    rows = models.rows[:5]
    response = client.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == production and body["count"] == 5
    assert len({p["prediction_id"] for p in body["predictions"]}) == 5
    expected = models.registry.load_predictor(production).score_rows(rows)
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(list(expected), abs=1e-12)

    bad = client.post("/predict/batch", json={"rows": [rows[0], {**rows[1], "origin": "SFO"}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "rows", 1, "origin"]
    assert client.post("/predict/batch", json={"rows": []}).status_code == 422


def test_batch_limit_is_inclusive_and_a_bigger_batch_is_413(client, server, models):
    limit = server.settings.serving_max_batch_rows
    many = (models.rows * (limit // len(models.rows) + 1))[: limit + 1]
    assert client.post("/predict/batch", json={"rows": many[:limit]}).json()["count"] == limit
    over = client.post("/predict/batch", json={"rows": many})
    assert over.status_code == 413
    assert f"at most {limit} rows" in over.json()["detail"]
    oversized = b" " * (server.settings.serving_max_body_bytes + 1)
    huge = client.post("/predict/batch", content=oversized, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "over the limit" in huge.json()["detail"]


def test_with_prediction_logging_off_predictions_are_answered_but_not_logged(tmp_path, mlflow_server, models):
    settings = settings_for(tmp_path, mlflow_server, prediction_logging=False)
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url) as http:
        one = http.post("/predict", json=models.rows[0])
        assert one.status_code == 200 and one.json()["prediction_id"]
        assert http.post("/predict/batch", json={"rows": models.rows[:3]}).json()["count"] == 3
        unlogged = http.post("/feedback", json={"prediction_id": one.json()["prediction_id"], "label": 1}, headers=AUTH)
        assert unlogged.status_code == 404
    store = PredictionStore(settings.store_url)  # the server flushed on shutdown: nothing was queued
    assert store.count_predictions() == 0
    store.close()


# -- feedback and tokens ------------------------------------------------------------------------
def test_feedback_labels_a_prediction_once(client, models):
    prediction = client.post("/predict", json=models.rows[3]).json()
    # Sent at once: the prediction may still be queued for the writer thread.
    ack = client.post("/feedback", json={"prediction_id": prediction["prediction_id"], "label": 1}, headers=AUTH)
    assert ack.status_code == 201, ack.text
    assert ack.json()["model_version"] == prediction["model_version"] and ack.json()["label"] == 1
    again = client.post("/feedback", json={"prediction_id": prediction["prediction_id"], "label": 0}, headers=AUTH)
    assert again.status_code == 409 and "already labelled" in again.json()["detail"]
    unknown = client.post("/feedback", json={"prediction_id": str(uuid.uuid4()), "label": 1}, headers=AUTH)
    assert unknown.status_code == 404
    not_binary = client.post("/feedback", json={"prediction_id": prediction["prediction_id"], "label": 2}, headers=AUTH)
    assert not_binary.status_code == 422 and not_binary.json()["detail"][0]["loc"] == ["body", "label"]


def test_feedback_batch_writes_each_label_once_in_order(client, models):
    batch = client.post("/predict/batch", json={"rows": models.rows[:3]}).json()
    ids = [p["prediction_id"] for p in batch["predictions"]]
    client.post("/feedback", json={"prediction_id": ids[0], "label": 0}, headers=AUTH)  # labelled before
    unknown = str(uuid.uuid4())
    sent = [(ids[0], 1), (ids[1], 1), (unknown, 0), (ids[2], 0), (ids[1], 0)]  # the last: ids[1] again
    answer = client.post("/feedback/batch", json={"labels": [{"prediction_id": i, "label": v} for i, v in sent]}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [r["status"] for r in body["results"]] == ["duplicate", "labelled", "unknown", "labelled", "duplicate"]
    assert body["labelled"] == 2 and [r["prediction_id"] for r in body["results"]] == [i for i, _ in sent]
    assert (body["results"][1]["label"], body["results"][1]["model_version"]) == (1, batch["model_version"])
    # What the batch wrote is what a single label would have: the first label of ids[0] stands.
    again = client.post("/feedback", json={"prediction_id": ids[1], "label": 0}, headers=AUTH)
    assert again.status_code == 409
    empty = client.post("/feedback/batch", json={"labels": []}, headers=AUTH)
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "labels"]
    bad = client.post("/feedback/batch", json={"labels": [{"prediction_id": ids[0], "label": True}]}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "labels", 0, "label"]
    assert client.post("/feedback/batch", json={"labels": [{"prediction_id": unknown, "label": 1}]}).status_code == 401


PROTECTED = [("POST", "/feedback"), ("POST", "/admin/reload"), ("POST", "/retrain"), ("GET", "/retrain/status/abc")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_admin_endpoints_want_the_bearer_token(client, method, path, monkeypatch):
    body = {"prediction_id": "x", "label": 1} if path == "/feedback" else None
    missing = client.request(method, path, json=body)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert client.request(method, path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.request(method, path, json=body, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    monkeypatch.delenv("RETRAIN_ADMIN_TOKEN")
    unset = client.request(method, path, json=body, headers=AUTH)
    assert unset.status_code == 503 and "admin token not configured" in unset.json()["detail"]


# -- model info, health, docs -------------------------------------------------------------------
def test_model_info_and_health_describe_the_served_model(client, models):
    production, challenger = served_versions(models)
    info = client.get("/model-info").json()
    assert info["version"] == production and info["challenger_version"] == challenger
    assert info["model_uri"] == f"models:/{models.spec.model_name}/{production}"
    tags = models.registry.version_info(production).tags
    assert info["data_window"] == tags["data_window"] and info["promoted_at"] == tags["promoted_at"]
    assert info["dagster_run_id"] == tags["dagster_run_id"]
    assert info["metrics"] == pytest.approx(models.registry.run_metrics(production)) and "holdout_auc" in info["metrics"]
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["model_loaded"], body["model_version"]) == ("ok", True, production)
    assert body["store"]["failed_writes"] == 0
    checked = datetime.fromisoformat(body["last_registry_check_at"])
    assert datetime.now(UTC) - checked < timedelta(seconds=10)
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()["components"]["schemas"]["FlightsFeatures"]
    assert schema["additionalProperties"] is False and "carrier" in schema["required"]
    assert schema["properties"]["dep_hour"]["maximum"] == 23


# What a docs page loads: scripts, style sheets, icons, and the OpenAPI document it renders.
PAGE_REFERENCES = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


@pytest.mark.parametrize(("page", "scripts"), [("/docs", ["swagger-ui-bundle.js"]), ("/redoc", ["redoc.standalone.js"])])
def test_docs_pages_load_everything_from_this_server(client, page, scripts):
    """Offline, /docs and /redoc are whole pages: nothing they refer to lives on another host."""
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?:|//", html.text), html.text  # no address of another host
    # Nor may the scripts ask one (ReDoc loads its logo from its CDN): the browser is told so.
    assert html.headers["Content-Security-Policy"].startswith("default-src 'self';")
    references = [a or b for a, b in PAGE_REFERENCES.findall(html.text)]
    assert "/openapi.json" in references and [r for r in references if r.endswith(".js")] == [
        f"/docs/assets/{name}" for name in scripts
    ], references
    for reference in references:
        answer = client.get(reference)
        assert answer.status_code == 200, reference
        # The real files, not an error page: Swagger UI's and ReDoc's bundles are over 1 MB.
        assert len(answer.content) > (1_000_000 if reference.endswith(".js") else 4_000), reference


def test_without_a_production_model_predictions_are_503(tmp_path, mlflow_server):
    # No breast_cancer model was ever registered in this MLflow store.
    settings = settings_for(tmp_path, mlflow_server, dataset="breast_cancer")
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url) as http:
        row = example_row(get_spec("breast_cancer"))
        response = http.post("/predict", json=row)
        assert response.status_code == 503
        assert "no model is loaded yet" in response.json()["detail"] and "production" in response.json()["detail"]
        assert http.post("/predict/batch", json={"rows": [row]}).status_code == 503
        assert http.get("/model-info").status_code == 503
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert http.post("/predict", json={**row, "mean_radius": -1}).status_code == 422  # validation still first


# -- durability: every prediction reaches the store -----------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_predictions_all_reach_the_store_after_a_graceful_stop(request, tmp_path, mlflow_server, models, backend):
    # Queued until shutdown: a long interval and a big batch, so only close() can write them.
    sqlite = contextlib.nullcontext(f"sqlite:///{tmp_path / 'graceful.db'}")
    with postgres_store_url(request.getfixturevalue("postgres_url")) if backend == "postgres" else sqlite as url:
        settings = settings_for(
            tmp_path, mlflow_server, prediction_store_url=url,
            serving_poll_seconds=30, store_batch_size=100_000, store_flush_seconds=60,
        )  # fmt: skip
        running = UvicornThread(create_app(settings))
        _, challenger = served_versions(models)

        def predict_many(rows):
            with httpx.Client(base_url=running.url, timeout=30) as http:
                answers = [http.post("/predict", json=row) for row in rows]
            return [(a.status_code, a.json().get("prediction_id")) for a in answers]

        total, threads = 200, 8
        rows = (models.rows * 2)[:total]
        with ThreadPoolExecutor(threads) as pool:
            results = [r for chunk in pool.map(predict_many, [rows[i::threads] for i in range(threads)]) for r in chunk]
        assert [status for status, _ in results] == [200] * total
        reader = PredictionStore(url)
        assert reader.count_predictions() == 0  # all still queued in the server
        running.stop()

        assert reader.count_predictions() == total
        logged = reader.predictions_since(datetime.now(UTC) - timedelta(hours=1))
        assert set(logged["prediction_id"]) == {pid for _, pid in results}
        assert (logged["shadow_version"].isna().all() if challenger is None else logged["shadow_version"].eq(challenger).all())
        reader.close()


@dataclass
class UvicornProcess:
    process: subprocess.Popen
    port: int
    log: Path  # its stdout and stderr

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def uvicorn_process(tmp_path, mlflow_server, workers: int, **env) -> Iterator[UvicornProcess]:
    """`uvicorn serving.app:app` as deployed, settings from RETRAIN_* only; yields it once ready.

    Its output goes to a file, not a pipe: nobody reads a pipe while the test runs, and once its
    buffer is full uvicorn's access log blocks the workers' event loops (a hang after ~1,000 requests)."""
    port = free_port()
    env = {
        **os.environ, "RETRAIN_HOME": str(tmp_path / "home"), "RETRAIN_MLFLOW_TRACKING_URI": mlflow_server.url,
        "RETRAIN_PREDICTION_STORE_URL": f"sqlite:///{tmp_path / 'process.db'}", "RETRAIN_SERVING_POLL_SECONDS": "30",
        **env,
    }  # fmt: skip
    command = [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    log = tmp_path / "uvicorn.log"
    # A session of its own, so that its workers can be stopped with it whatever happens here.
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    server = UvicornProcess(process, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            def ready():
                try:
                    return http.get("/health").status_code == 200
                except httpx.TransportError:
                    assert process.poll() is None, server.output()[-3000:]
                    return False

            wait_for(ready, timeout=60, what="uvicorn serving.app:app to be ready")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM if process.poll() is None else signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers a supervisor left behind


@pytest.mark.parametrize("workers", [1, 2])
def test_uvicorn_process_configured_by_env_flushes_on_sigterm(tmp_path, mlflow_server, models, workers):
    """SIGTERM as the stop, one worker or several (which race to create the store's tables in a
    fresh database). A `dagster` package that refuses to import shadows the real one: serving
    must never need it."""
    poisoned = tmp_path / "no_dagster" / "dagster"
    poisoned.mkdir(parents=True)
    (poisoned / "__init__.py").write_text("raise ImportError('serving imported dagster')\n")
    env = {"PYTHONPATH": str(poisoned.parent), "RETRAIN_STORE_FLUSH_SECONDS": "60", "RETRAIN_STORE_BATCH_SIZE": "100000"}
    with uvicorn_process(tmp_path, mlflow_server, workers, **env) as server:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            ids = [http.post("/predict", json=row).json()["prediction_id"] for row in models.rows[:50]]
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
    output = server.output()
    # Uvicorn re-raises the signal once its graceful shutdown is complete.
    assert server.process.returncode in (0, -signal.SIGTERM), output[-3000:]
    assert output.count("Application shutdown complete") == workers
    reader = PredictionStore(f"sqlite:///{tmp_path / 'process.db'}")
    assert set(reader.predictions_since(datetime.now(UTC) - timedelta(hours=1))["prediction_id"]) == set(ids)
    reader.close()


# -- hot swap and registry outage ---------------------------------------------------------------
def test_promotion_is_picked_up_under_load_without_a_failed_request(client, server, models):
    before, _ = served_versions(models)
    after = next(v for v in models.versions if v != before)
    seen, failures, stop = [], [], threading.Event()

    def hammer():
        with httpx.Client(base_url=server.url, timeout=30) as http:
            i = 0
            while not stop.is_set():
                try:
                    response = http.post("/predict", json=models.rows[i % len(models.rows)])
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        seen.append(response.json()["model_version"])
                except httpx.HTTPError as err:
                    failures.append(repr(err))
                i += 1

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        wait_for(lambda: len(seen) > 20, what="traffic before the promotion")
        models.registry.promote(after, expected_current=before)
        wait_for(lambda: seen and seen[-1] == after, what=f"responses from version {after}")
        count = len(seen)
        wait_for(lambda: len(seen) > count + 20, what="traffic after the swap")
    finally:
        stop.set()
        worker.join()
    assert failures == []
    swap = seen.index(after)
    assert set(seen[:swap]) == {before} and set(seen[swap:]) == {after}  # one clean switch
    health = client.get("/health").json()
    assert health["model_version"] == after and health["status"] == "ok"
    assert health["challenger_version"] is None  # the challenger alias now names production itself


def test_registry_outage_keeps_serving_and_health_says_degraded(client, mlflow_server, models):
    production, challenger = served_versions(models)
    mlflow_server.stop()
    try:
        health = wait_for(lambda: (h := client.get("/health").json())["status"] == "degraded" and h, what="degraded")
        assert health["model_version"] == production and health["model_loaded"]
        assert "Connection" in health["registry_error"] or "connect" in health["registry_error"].lower()
        answer = client.post("/predict", json=models.rows[4])
        assert answer.status_code == 200 and answer.json()["model_version"] == production
        assert client.get("/model-info").json()["version"] == production
        reload = client.post("/admin/reload", headers=AUTH)
        assert reload.status_code == 503 and "registry check failed" in reload.json()["detail"]
    finally:
        mlflow_server.start()
    wait_for(lambda: client.get("/health").json()["status"] == "ok", what="recovery after the registry is back")
    assert client.post("/admin/reload", headers=AUTH).json() == {
        "changed": False, "model_version": production, "challenger_version": challenger, "registry_error": None,
    }  # fmt: skip


def test_stopping_does_not_wait_for_a_registry_that_hangs(mlflow_server, models, monkeypatch):
    """A registry that takes connections and never answers (the stopped MLflow's port, held by a
    socket nobody reads): a poll stuck on it must not hold up the shutdown for its timeout."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    holder = ModelHolder(models.spec, mlflow_server.url, poll_seconds=0.05)
    holder.start()
    assert holder.served.version == models.registry.production_version()
    mlflow_server.stop()
    hang = socket.socket()
    try:
        hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hang.bind(("127.0.0.1", mlflow_server.port))
        hang.listen(64)  # the kernel completes each connection; no answer ever comes

        def stuck() -> bool:  # polls every 50 ms, but no new one for a second: one waits for an answer
            seen = holder.status.last_check_at
            time.sleep(1.0)
            return holder.status.last_check_at == seen

        wait_for(stuck, what="a poll stuck on the registry")
        started = time.monotonic()
        holder.stop()
        assert time.monotonic() - started < 20  # not the 120 s the stuck poll waits
        assert holder.served.version == models.registry.production_version()  # what it served is untouched
    finally:
        hang.close()  # the stuck request fails now, and its thread ends
        mlflow_server.start()


# -- retraining through Dagster -----------------------------------------------------------------
def test_retrain_launches_the_dagster_job_and_reports_its_status(client, dagster):
    launched = client.post("/retrain", headers=AUTH)
    assert launched.status_code == 202, launched.text
    run = launched.json()
    assert run["status"] == "QUEUED" and run["dagster_run_url"] == f"{dagster.url}/runs/{run['run_id']}"
    launch_call = next(c for c in dagster.calls if "launchRun" in c["query"])
    assert launch_call["errors"] == [] and launch_call["path"] == "/graphql"
    tags = launch_call["variables"]["executionParams"]["executionMetadata"]["tags"]
    assert {"key": TRIGGER_TAG, "value": "serving"} in tags and {"key": MODEL_TAG, "value": "retrain-flights"} in tags

    status = client.get(f"/retrain/status/{run['run_id']}", headers=AUTH)
    assert status.status_code == 200
    assert status.json() == {**run, "status": "STARTED", "outcome": "running", "detail": "In progress.",
                             "failed_gates": [], "promoted_version": None, "failed_step": None}  # fmt: skip
    assert all(call["errors"] == [] for call in dagster.calls)  # every query is valid for Dagster's schema
    assert client.get("/retrain/status/no-such-run", headers=AUTH).status_code == 404


def test_retrain_page_offers_the_button_only_with_an_admin_token_on_the_server(client, monkeypatch):
    page = client.get("/retrain")
    assert page.status_code == 200 and '<button id="retrain">' in page.text and 'type="password"' in page.text
    assert 'id="no-token"' not in page.text
    monkeypatch.setenv("RETRAIN_ADMIN_TOKEN", "")  # empty is unset
    page = client.get("/retrain")
    assert page.status_code == 200 and 'id="no-token"' in page.text
    assert "set <code>RETRAIN_ADMIN_TOKEN</code> in serving's environment" in page.text
    assert "<button" not in page.text and 'type="password"' not in page.text


GATES_FOR_ANY_MODEL = {"auc_floor": 0.5, "recall_floor": 0.0, "cooldown_days": 0.0}
ONE_MONTH = {"window_days": 30, "window_end": "2013-02-28"}


@pytest.fixture(scope="module")
def dagster_runs(tmp_path_factory):
    """Dagster's webserver (its ASGI app under uvicorn, as `dagster-webserver` runs it) over an
    instance that holds four finished runs of the retrain job, run here in-process: rejected by
    the gates (an AUC floor no model reaches), failed at its first step, promoted, and waiting in
    shadow for live evidence."""
    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster_webserver.app import create_app_from_workspace_process_context

    from retrain_platform.definitions import build_definitions

    from .conftest import make_settings, run_job

    folder = tmp_path_factory.mktemp("dagster")
    defs = build_definitions(make_settings(folder))
    quick = {"max_rounds": 5}
    with dg.instance_for_test() as instance:
        runs = {
            "rejected": run_job(defs, instance, raw_data=ONE_MONTH, candidate_model=quick,
                                evaluation_report={"auc_floor": 0.99, "recall_floor": 0.0}),
            "failed": run_job(defs, instance, raw_data={**ONE_MONTH, "window_end": "the 31st of Smarch"}),
            "promoted": run_job(defs, instance, raw_data=ONE_MONTH, candidate_model=quick,
                                evaluation_report=GATES_FOR_ANY_MODEL),
            # Passes offline (even as the champion's twin) and must wait for live evidence.
            "waiting": run_job(defs, instance, raw_data=ONE_MONTH, candidate_model=quick,
                               evaluation_report={**GATES_FOR_ANY_MODEL, "min_improvement": -1.0,
                                                  "max_auc_degradation": 1.0, "live_evidence": "required"}),
        }  # fmt: skip
        assert [result.success for result in runs.values()] == [False, False, True, True]
        with (
            WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace,
            UvicornThread(create_app_from_workspace_process_context(workspace)) as webserver,
        ):
            yield webserver.url, {outcome: result.run_id for outcome, result in runs.items()}


def test_retrain_status_says_what_a_finished_run_did(tmp_path, mlflow_server, dagster_runs):
    url, runs = dagster_runs
    with (
        UvicornThread(create_app(settings_for(tmp_path, mlflow_server, dagster_url=url))) as running,
        httpx.Client(base_url=running.url, headers=AUTH, timeout=30) as http,
    ):
        rejected, failed, promoted, waiting = (http.get(f"/retrain/status/{runs[name]}").json()
                                               for name in ("rejected", "failed", "promoted", "waiting"))  # fmt: skip
    assert rejected == {
        "run_id": runs["rejected"], "status": "FAILURE", "dagster_run_url": f"{url}/runs/{runs['rejected']}",
        "outcome": "rejected", "failed_gates": ["auc_floor"], "promoted_version": None, "failed_step": None,
        "detail": "Rejected by the gates: auc_floor. Production is unchanged.",
    }  # fmt: skip
    assert (failed["status"], failed["outcome"], failed["failed_step"]) == ("FAILURE", "failed", "raw_data")
    assert failed["detail"].startswith("Failed at step raw_data: ") and "Smarch" in failed["detail"]
    assert (promoted["status"], promoted["outcome"], promoted["failed_gates"]) == ("SUCCESS", "promoted", [])
    # The first version of this registry was rejected, the one after it promoted.
    assert promoted["promoted_version"] == "2" and promoted["detail"] == "Promoted: version 2 is now in production."
    assert (waiting["status"], waiting["outcome"], waiting["promoted_version"]) == ("SUCCESS", "waiting", None)
    assert "serves in shadow until live evidence decides it" in waiting["detail"]


def test_retrain_reports_dagster_errors(tmp_path, mlflow_server, dagster):
    settings = settings_for(tmp_path, mlflow_server, dagster_url=dagster.url, dagster_retrain_job="no_such_job")
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url) as http:
        refused = http.post("/retrain", headers=AUTH)
        assert refused.status_code == 502 and "PipelineNotFoundError" in refused.json()["detail"]
    down = settings_for(tmp_path, mlflow_server, dagster_url=f"http://127.0.0.1:{free_port()}")
    with UvicornThread(create_app(down)) as running, httpx.Client(base_url=running.url) as http:
        unreachable = http.post("/retrain", headers=AUTH)
        assert unreachable.status_code == 503 and "did not answer" in unreachable.json()["detail"]


# -- the model's health on the Retrain page ------------------------------------------------------
def check(at: datetime, level: str = "ok", version: str = "1", event_time: datetime | None = None, **values) -> dict:
    """A row of the monitoring log's `drift_checks`, as monitoring writes it."""
    drifted = values.pop("drifted_columns", [])
    return {"checked_at": at, "event_time": event_time, "model_version": version, "source": "drift_sensor",
            "rows": 500, "level": level, "n_drifted": len(drifted), "share_drifted": len(drifted) / 17,
            "dataset_drift": level in ("flag", "alert"), "drifted_columns": drifted, **values}  # fmt: skip


def archive_decision(folder, when: datetime, retrain: bool, reason: str, trigger: str, status: str) -> None:
    decision = RetrainingDecision(decision_date=when, retrain=retrain, reason=reason, trigger=trigger, source="test")
    archived = folder.keep(decision, f"{when:%Y%m%dT%H%M%S}-{trigger}.json", {"status": status, "taken_by": "test"})
    os.utime(archived, ns=(int(when.timestamp() * 1e9),) * 2)  # the archive's order is its files' times


def test_retrain_health_shows_auc_per_day_alarms_and_decisions(client, server):
    day = datetime(2013, 6, 3, tzinfo=UTC)
    log = MonitoringLog(server.settings.store_url)
    for row in [
        check(day + timedelta(hours=2), realised_auc=0.70, promised_auc=0.74, event_time=day + timedelta(hours=1)),
        check(day + timedelta(hours=5), realised_auc=0.71, promised_auc=0.74, estimated_auc=0.72,
              estimated_auc_low=0.69, estimated_auc_high=0.75, event_time=day + timedelta(hours=4)),
        # Drift that persists is one episode: this check raises the alarm, the next one extends it.
        check(day + timedelta(hours=23), "flag", drifted_columns=["precip", "dest"], drifted_importance=0.3,
              event_time=day + timedelta(days=1, hours=1)),
        check(day + timedelta(days=1), "flag", drifted_columns=["wind_speed", "precip"], drifted_importance=0.45,
              estimated_auc=0.66, estimated_auc_low=0.62, estimated_auc_high=0.70, promised_auc=0.74,
              event_time=day + timedelta(days=1, hours=2)),
        # No event time: the day is its check's.
        check(day + timedelta(days=2, hours=1), "warn", version="2", promised_auc=0.76),
        check(day + timedelta(days=2, hours=3), "alert", version="2", drifted_columns=["visib"],
              drifted_importance=0.6, promised_auc=0.76),
    ]:  # fmt: skip
        log.record(row)
    log.close()
    folder = DecisionFolder(server.settings.decisions_dir).create()
    archive_decision(folder, day + timedelta(days=1, hours=3), True, "drift on wind_speed, precip; retraining",
                     "drift", "retrain")  # fmt: skip
    archive_decision(folder, day + timedelta(days=2, hours=4), False, "analyst <b>suspects</b> delays; not retraining: "
                     "cooldown", "manual", "no-retrain")  # fmt: skip

    answer = client.get("/retrain/health")  # no token: read-only, like /health
    assert answer.status_code == 200, answer.text
    health = answer.json()
    assert health["model_version"] == client.get("/health").json()["model_version"] is not None
    assert health["monitoring_log"] == "ok" and health["checks_read"] == 6 and health["decisions_unreadable"] == 0
    assert [d["day"] for d in health["days"]] == ["2013-06-05", "2013-06-04", "2013-06-03"]
    newest, flagged, first = health["days"]
    assert (newest["level"], newest["model_version"], newest["promised_auc"]) == ("alert", "2", 0.76)
    assert (flagged["estimated_auc"], flagged["estimated_auc_low"], flagged["estimated_auc_high"]) == (0.66, 0.62, 0.70)
    assert first == {"day": "2013-06-03", "checked_at": "2013-06-03T05:00:00Z", "model_version": "1", "level": "ok",
                     "realised_auc": 0.71, "estimated_auc": 0.72, "estimated_auc_low": 0.69,
                     "estimated_auc_high": 0.75, "promised_auc": 0.74}  # the day's newest check  # fmt: skip
    assert [(a["level"], a["drifted_columns"], a["drifted_importance"], a["event_time"]) for a in health["alarms"]] == [
        ("alert", ["visib"], 0.6, None), ("flag", ["precip", "dest"], 0.3, "2013-06-04T01:00:00Z")]
    episode = health["alarms"][1]
    assert (episode["episode_checks"], episode["episode_last"]) == (2, "2013-06-04T02:00:00Z")
    assert episode["episode_columns"][0] == "precip" and set(episode["episode_columns"]) == {"precip", "dest", "wind_speed"}
    assert [(d["trigger"], d["retrain"], d["status"]) for d in health["decisions"]] == [
        ("manual", False, "no-retrain"), ("drift", True, "retrain")]
    assert health["decisions"][1]["decision_date"] == "2013-06-04T03:00:00Z"

    page = client.get("/retrain")
    assert page.status_code == 200
    days = page.text.split('id="health-days"')[1].split("</table>")[0]
    assert days.index("2013-06-05") < days.index("2013-06-04") < days.index("2013-06-03")
    assert ">0.710<" in days and "0.720 <span" in days and "(0.690&ndash;0.750)" in days and ">0.740<" in days
    assert ">0.700<" not in days  # an older check of the same day
    alarms = page.text.split('id="health-alarms"')[1].split("</table>")[0]
    assert "precip, dest" in alarms and ">30%<" in alarms and ">60%<" in alarms and "2013-06-04 01:00" in alarms
    assert "2 checks to 2013-06-04 02:00; also wind_speed" in alarms
    decisions = page.text.split('id="health-decisions"')[1].split("</table>")[0]
    assert "analyst &lt;b&gt;suspects&lt;/b&gt; delays" in decisions and ">no-retrain<" in decisions
    assert "2013-06-04 03:00" in decisions and "<script" not in page.text.split('id="health"')[1].split("</section>")[0]
    assert '<button id="retrain">' in page.text  # the button is still there, above the health

    operation = client.get("/openapi.json").json()["paths"]["/retrain/health"]["get"]
    assert "security" not in operation and "needs no token" in operation["description"]


def test_retrain_health_says_plainly_when_the_log_is_empty(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("RETRAIN_ADMIN_TOKEN", "")  # the page works without a token too
    settings = settings_for(tmp_path, mlflow_server, dataset="breast_cancer")  # no model: starts at once
    with UvicornThread(create_app(settings)) as running, httpx.Client(base_url=running.url) as http:
        health = http.get("/retrain/health").json()
        page = http.get("/retrain")
    assert health == {"model_name": get_spec("breast_cancer").model_name, "model_version": None,
                      "monitoring_log": "empty", "monitoring_error": None, "checks_read": 0, "days": [],
                      "alarms": [], "decisions": [], "decisions_unreadable": 0}  # fmt: skip
    assert page.status_code == 200 and 'id="no-token"' in page.text
    assert "The monitoring log is empty: no drift check has run yet" in page.text
    assert "No retraining decision taken yet." in page.text and 'id="health-days"' not in page.text


def test_retrain_health_reads_only_the_newest_decisions_and_counts_unreadable_ones(tmp_path):
    folder = DecisionFolder(tmp_path).create()
    start = datetime(2013, 1, 1, tzinfo=UTC)
    for n in range(DECISIONS_READ + 5):
        archive_decision(folder, start + timedelta(days=n), False, f"decision {n}", "schedule", "no-retrain")
    broken = folder.archive / "broken.json"
    broken.write_text("{not json")
    os.utime(broken, ns=(int((start + timedelta(days=99)).timestamp() * 1e9),) * 2)
    decisions, unreadable = newest_decisions(folder.archive)
    assert unreadable == 1 and len(decisions) == DECISIONS_READ - 1
    assert [d.reason for d in decisions[:2]] == [f"decision {DECISIONS_READ + 4}", f"decision {DECISIONS_READ + 3}"]
    assert newest_decisions(tmp_path / "nowhere") == ([], 0)


@pytest.mark.parametrize("make_ids", [prediction_ids, lambda count: [prediction_id() for _ in range(count)]],
                         ids=["in bulk", "one by one"])  # fmt: skip
def test_prediction_ids_are_unique_time_ordered_version_7_uuids(make_ids):
    before = time.time_ns() // 1_000_000
    ids = make_ids(5_000)
    after = time.time_ns() // 1_000_000
    time.sleep(0.002)
    later = make_ids(10)
    [one] = make_ids(1)
    assert len(set(ids)) == 5_000 and uuid.UUID(one).version == 7 and make_ids(0) == []
    parsed = [uuid.UUID(value) for value in ids]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert [str(u) for u in parsed] == ids  # canonical lower-case text, as the store keeps it
    assert {before <= u.int >> 80 <= after for u in parsed} == {True}  # the first 48 bits: Unix ms
    assert max(ids) < min(later)  # text order is time order, a millisecond apart


def test_a_batch_of_ids_follows_its_rows():
    ids = prediction_ids(3_000)  # one millisecond for the batch, then a counter in row order
    assert ids == sorted(ids) and len(set(ids)) == 3_000
    assert uuid.UUID(ids[0]).version == 7 and uuid.UUID(ids[-1]).variant == uuid.RFC_4122
