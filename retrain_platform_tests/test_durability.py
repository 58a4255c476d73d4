"""Acknowledged means stored: a prediction or label answered by a real `uvicorn serving.app:app`
survives a SIGKILL of the server (its workers, and with them the log's writer, a thread in each),
and is in the SQL store, exactly once, after a restart.

The log is set to ship late (a 60 s interval, a batch larger than the test): at the kill, what was
answered is only in the log's segments, so the test sees the replay do the work.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from retrain_platform.store import PredictionStore
from retrain_platform_tests.serving_fixtures import ServingProcess, register_flight_models, store_url  # noqa: F401

TOKEN = "durability-token"
LATE_SHIPPING = {"RETRAIN_STORE_FLUSH_SECONDS": "60", "RETRAIN_STORE_BATCH_SIZE": "1000000"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return register_flight_models(tmp_path_factory.mktemp("mlflow"), count=1)


@pytest.fixture
def serving(tmp_path, models, store_url):
    env = {"RETRAIN_HOME": str(tmp_path / "home"), "RETRAIN_MLFLOW_TRACKING_URI": models.tracking_uri,
           "RETRAIN_PREDICTION_STORE_URL": store_url, "RETRAIN_ADMIN_TOKEN": TOKEN, **LATE_SHIPPING}  # fmt: skip
    with ServingProcess(tmp_path, workers=2, env=env) as server:
        yield server.start()


def stored(store_url: str) -> tuple[list[str], dict[str, int]]:
    """Every prediction id in the store (with repeats, if any), and the labels by prediction id."""
    store = PredictionStore(store_url)
    try:
        ids = list(store.predictions_since(datetime.now(UTC) - timedelta(days=1))["prediction_id"])
        labelled = store.labelled_predictions(datetime.now(UTC) - timedelta(days=1))
        return ids, dict(zip(labelled["prediction_id"], labelled["label"], strict=True))
    finally:
        store.close()


def predict(http: httpx.Client, rows: list[dict]) -> list[str]:
    """The ids of the predictions answered with 200: one row at a time, then the rest as batches."""
    ids = []
    for row in rows[:40]:
        response = http.post("/predict", json=row)
        assert response.status_code == 200, response.text
        ids.append(response.json()["prediction_id"])
    for start in range(40, len(rows), 30):
        response = http.post("/predict/batch", json={"rows": rows[start : start + 30]})
        assert response.status_code == 200, response.text
        ids += [answer["prediction_id"] for answer in response.json()["predictions"]]
    return ids


def wait_until(condition, timeout: float = 120.0) -> None:
    """Waits for a condition of the test's own making; the timeout only keeps a broken server from
    hanging the suite."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server stopped answering"
        time.sleep(0.01)


def restart_and_stop(server: ServingProcess) -> None:
    """Start the killed server again (its workers replay the segments left behind), then stop it
    gracefully, so that whatever it still holds is shipped before the store is read."""
    server.start()
    server.stop()
    assert server.process.returncode in (0, -signal.SIGTERM), server.output()[-3000:]


def test_answered_predictions_survive_a_sigkill_of_the_server(serving, models, store_url):
    with httpx.Client(base_url=serving.url, timeout=30) as http:
        answered = predict(http, models.rows[:160])
    assert len(set(answered)) == 160
    assert stored(store_url)[0] == []  # nothing shipped yet: the segments hold it all
    serving.kill()
    restart_and_stop(serving)
    ids, _ = stored(store_url)
    assert sorted(ids) == sorted(answered)  # exactly those: none lost, none twice, none made up


def test_answered_labels_survive_a_sigkill_of_the_server(serving, models, store_url):
    with httpx.Client(base_url=serving.url, timeout=30) as http:
        answered = predict(http, models.rows[:100])
    # Labels for predictions not shipped yet, each on a connection of its own, which either worker
    # may take: a label may reach the worker that did not answer its prediction.
    labels = {prediction_id: i % 2 for i, prediction_id in enumerate(answered[::2])}
    for prediction_id, label in labels.items():
        response = httpx.post(f"{serving.url}/feedback", json={"prediction_id": prediction_id, "label": label},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)  # fmt: skip
        assert response.status_code == 201, response.text
    serving.kill()
    restart_and_stop(serving)
    ids, stored_labels = stored(store_url)
    assert sorted(ids) == sorted(answered)
    assert stored_labels == labels


def test_a_worker_killed_under_load_loses_no_answered_prediction(serving, models, store_url):
    """SIGKILL of one worker while requests are in flight: the supervisor starts another, whose
    start replays the dead one's segment. Every prediction answered is stored once; a request cut
    off by the kill may or may not have been stored, never twice."""
    answered, cut_off, stop = [], [], threading.Event()

    def load(offset: int) -> None:
        with httpx.Client(base_url=serving.url, timeout=30) as http:
            i = offset
            while not stop.is_set():
                try:
                    response = http.post("/predict", json=models.rows[i % len(models.rows)])
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    answered.append(response.json()["prediction_id"])
                else:
                    cut_off.append(i)
                i += 1

    with ThreadPoolExecutor(8) as pool:
        for offset in range(8):
            pool.submit(load, offset * 50)
        try:
            wait_until(lambda: len(answered) >= 400)
            os.kill(serving.workers()[0], signal.SIGKILL)
            wait_until(lambda: len(answered) >= 800)  # the survivor, then the dead one's successor, answer
        finally:
            stop.set()
    serving.stop()  # graceful: the survivors ship what they hold
    restart_and_stop(serving)  # and a start replays whatever segment is left
    ids, _ = stored(store_url)
    assert len(ids) == len(set(ids))  # none twice
    assert set(answered) <= set(ids)  # none answered is lost
    assert len(set(ids) - set(answered)) <= len(cut_off)  # the rest are requests the kill cut off
