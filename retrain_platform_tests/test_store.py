"""The prediction store on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
import sqlalchemy as sa

from retrain_platform.store import DuplicateLabel, PredictionStore, UnknownPrediction, metadata
from retrain_platform.store.prediction_store import checked_rows
from retrain_platform.store.schema import UTCDateTime
from retrain_platform_tests.serving_fixtures import postgres_store_url, store_url, stored_prediction  # noqa: F401 - a fixture
from serving.routers.predictions import prediction_row, request_rows

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def prediction(created_at: datetime = START, version: str = "1", score: float = 0.3, **features) -> dict:
    return {
        "prediction_id": str(uuid.uuid4()),
        "created_at": created_at,
        "model_version": version,
        "features": features or {"carrier": "AA", "distance": 1000.0, "wind_gust": None},
        "score": score,
        "predicted_label": int(score >= 0.5),
        "latency_ms": 0.2,
    }


def test_logged_predictions_are_shipped_on_close(store_url, tmp_path):
    # A long interval and a big batch: nothing reaches the database before close().
    store = PredictionStore(store_url, log_dir=tmp_path / "log", batch_size=100_000, flush_interval=60)
    store.start()
    rows = [prediction() for _ in range(400)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store.record, rows))
    assert store.count_predictions() == 0
    assert store.stats().pending == 400
    store.close()
    assert list((tmp_path / "log").iterdir()) == []  # every segment shipped and deleted

    reopened = PredictionStore(store_url)
    try:
        assert reopened.count_predictions() == 400
        assert set(reopened.predictions_since(START)["prediction_id"]) == {row["prediction_id"] for row in rows}
    finally:
        reopened.close()


def test_full_batch_is_shipped_without_waiting_for_the_interval(store_url):
    store = PredictionStore(store_url, batch_size=50, flush_interval=60)
    store.start()
    try:
        store.record_many([prediction() for _ in range(120)])
        deadline = time.monotonic() + 10
        while store.count_predictions() < 120 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count_predictions() == 120
    finally:
        store.close()
    assert store.count_predictions() == 120


def test_a_prediction_shipped_twice_is_stored_once(store_url):
    # What a replay looks like when the segment's first shipment landed before its process died.
    store = PredictionStore(store_url, batch_size=1_000, flush_interval=60)
    first = prediction(score=0.3)
    store.record(first)
    store.flush()
    later = [prediction() for _ in range(3)]
    store.record_many([{**first, "score": 0.9}, *later])
    assert store.flush() == 4
    assert store.count_predictions() == 4 and store.stats().last_error is None
    assert stored_prediction(store, first["prediction_id"])["score"] == 0.3  # the first one stays
    store.close()


def test_features_given_as_json_text_are_stored_as_that_json(store_url):
    store = PredictionStore(store_url, batch_size=1_000, flush_interval=60)
    as_dict = prediction(carrier="B6", distance=1e-3, wind_gust=None)
    as_text = {**prediction(), "features": json.dumps({"carrier": "UA", "distance": 2.5, "wind_gust": None})}
    store.record_many([as_dict, as_text])
    assert store.flush() == 2
    stored = [stored_prediction(store, row["prediction_id"])["features"] for row in (as_dict, as_text)]
    store.close()
    assert stored == [{"carrier": "B6", "distance": 1e-3, "wind_gust": None},
                      {"carrier": "UA", "distance": 2.5, "wind_gust": None}]  # fmt: skip


def test_a_time_is_stored_as_its_instant_in_utc_whatever_its_form(store_url):
    # The same instant as UTC, as another offset, at a whole second, and on either side of it:
    # each row must come back as its instant and sort by it.
    paris = timezone(timedelta(hours=1))
    times = [START, START.astimezone(paris) + timedelta(microseconds=1), START - timedelta(microseconds=1),
             (START + timedelta(seconds=1, microseconds=123456)).astimezone(paris)]  # fmt: skip
    forms = [*times, START.timestamp() + 2.000007]  # and seconds since the epoch, as serving gives them
    times.append(START + timedelta(seconds=2, microseconds=7))
    store = PredictionStore(store_url, batch_size=100, flush_interval=60)
    rows = [prediction(created_at) for created_at in forms]
    store.record_many(rows)
    store.close()
    for row, created_at in zip(rows, times, strict=True):
        stored = stored_prediction(store, row["prediction_id"])["created_at"]
        assert stored == created_at and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert store.count_predictions(since=START) == 4  # the one a microsecond before is left out
    assert store.count_predictions(since=START.astimezone(paris) + timedelta(microseconds=1)) == 3


def test_sqlite_stores_a_time_as_sqlalchemy_would(tmp_path):
    # The log's statement takes the segments' time text as it is: it must be SQLAlchemy's own, or
    # reading back and comparing would break.
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    standard = sa.DateTime().dialect_impl(store.engine.dialect).bind_processor(store.engine.dialect)
    instants = [START, START + timedelta(microseconds=7), START - timedelta(microseconds=1),
                START + timedelta(microseconds=999_999), datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC),
                datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]  # fmt: skip
    rows = [prediction(instant) for instant in instants]
    store.record_many(rows)
    store.close()
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT prediction_id, created_at FROM predictions")).all())
    assert [stored[row["prediction_id"]] for row in rows] == [standard(at.replace(tzinfo=None)) for at in instants]
    # SQLAlchemy writes other times (labels', queries') through the column type: the same text.
    fast = UTCDateTime().bind_processor(store.engine.dialect)
    for instant in instants:
        expected = standard(instant.replace(tzinfo=None))
        as_text = orjson.dumps(instant).decode()[1:-1]
        assert fast(instant) == fast(as_text) == fast(instant.astimezone(timezone(timedelta(hours=-5)))) == expected
        assert fast(instant.timestamp()) == expected
    assert fast(None) is None
    for naive in (datetime(2026, 3, 1), "2026-03-01T12:00:00"):
        with pytest.raises(ValueError, match="naive datetime"):
            checked_rows([prediction(naive)])


def test_labels_are_written_once_and_only_for_known_predictions(store_url):
    store = PredictionStore(store_url, batch_size=1_000, flush_interval=60)
    store.start()
    try:
        row = prediction(version="7")
        store.record(row)
        # Not shipped yet: the label must not be refused because the writer has not run yet.
        ack = store.add_label(row["prediction_id"], 1)
        assert (ack.label, ack.model_version) == (1, "7")
        assert ack.labelled_at.tzinfo is not None
        with pytest.raises(DuplicateLabel, match="already labelled"):
            store.add_label(row["prediction_id"], 0)
        with pytest.raises(UnknownPrediction, match="no prediction with id 'nope'"):
            store.add_label("nope", 1)
    finally:
        store.close()
    assert store.count_predictions() == 1 and store.label_counts(START) == (1, 1)


def test_a_label_finds_its_prediction_in_another_process_s_log(tmp_path):
    """Two serving workers share the log's folder: a label may reach the one that did not answer
    its prediction before the other shipped it."""
    url, folder = f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "log"
    answering = PredictionStore(url, log_dir=folder, batch_size=1_000, flush_interval=60)
    labelling = PredictionStore(url, log_dir=folder, batch_size=1_000, flush_interval=60)
    row = prediction(version="5")
    answering.record(row)
    assert labelling.add_label(row["prediction_id"], 0).model_version == "5"
    assert answering.flush() == 1  # its own shipment stores nothing twice
    answering.close()
    labelling.close()
    assert labelling.count_predictions() == 1 and labelling.label_counts(START) == (1, 1)


def test_reading_helpers_for_monitoring(store_url):
    store = PredictionStore(store_url)
    try:
        old = [prediction(START - timedelta(days=3), carrier="UA", distance=500.0) for _ in range(3)]
        new = [prediction(START + timedelta(minutes=i), score=0.9, carrier="AA", distance=700.0) for i in range(4)]
        store.record_many(old + new)
        store.flush()
        store.add_label(new[0]["prediction_id"], 1)
        store.add_label(new[1]["prediction_id"], 0)
        store.add_label(old[0]["prediction_id"], 1)

        recent = store.predictions_since(START)
        assert list(recent["prediction_id"]) == [row["prediction_id"] for row in new]  # oldest first
        assert str(recent["created_at"].dt.tz) == "UTC"
        assert recent["created_at"].iloc[0] == START
        assert list(recent["carrier"].unique()) == ["AA"] and recent["distance"].eq(700.0).all()
        assert recent["predicted_label"].eq(1).all() and recent["shadow_score"].isna().all()

        labelled = store.labelled_predictions(START)
        assert sorted(labelled["label"]) == [0, 1]
        assert {"labelled_at", "score", "model_version", "carrier"} <= set(labelled.columns)

        assert store.label_counts(START) == (4, 2)
        assert store.label_counts(START + timedelta(days=1)) == (0, 0)
        assert store.label_counts(START - timedelta(days=7)) == (7, 3)
        assert store.predictions_since(START + timedelta(days=1)).empty
        assert store.count_predictions(since=START) == 4
    finally:
        store.close()


def test_a_request_s_rows_share_its_version_time_and_latency():
    at = START.timestamp() + 0.000123  # serving's time: seconds since the epoch
    rows = request_rows([{"x": 1}, {"x": 2}], ["a", "b"], [0.1, 0.9], [0, 1], "3", at, 0.5)
    assert [row["prediction_id"] for row in rows] == ["a", "b"] and rows[1]["features"] == {"x": 2}
    assert {row["created_at"] for row in rows} == {"2026-03-01 12:00:00.000123"}
    assert prediction_row("c", at, "3", {"x": 3}, 0.2, 0, 0.5) == request_rows([{"x": 3}], ["c"], [0.2], [0], "3", at, 0.5)[0]


def test_a_row_the_log_cannot_hold_fails_its_caller_and_one_the_database_refuses_fails_its_request_alone(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60)
    with pytest.raises(TypeError):
        store.record(prediction(carrier=object()))
    good = prediction_row(str(uuid.uuid4()), START.timestamp(), "1", {"x": 1}, 0.2, 0, 0.1)
    refused = {**prediction_row(str(uuid.uuid4()), START.timestamp(), "1", {"x": 1}, 0.2, 0, 0.1), "score": None}
    store.record_rows([refused])  # as if serving had logged it unchecked
    store.record_rows([good])  # another request, in the same batch
    assert store.flush() == 2  # shipped; the refused request dropped, not retried for ever
    assert store.stats().pending == 0 and store.count_predictions() == 1
    assert stored_prediction(store, good["prediction_id"]) is not None
    store.close()


class HalfScores:
    """A challenger whose score is half the champion's (given as the rows' `score` feature)."""

    version = "2"

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.calls: list[int] = []

    def score_rows(self, rows: list[dict]) -> list[float]:
        self.calls.append(len(rows))
        if self.fail:
            raise RuntimeError("challenger broke")
        return [row["score"] / 2 for row in rows]


def record_request(store: PredictionStore, rows: list[dict], shadow=None) -> None:
    """As serving records a request: rows that share the version, time and latency."""
    store.record_rows(request_rows(
        [row["features"] for row in rows], [row["prediction_id"] for row in rows], [row["score"] for row in rows],
        [row["predicted_label"] for row in rows], rows[0]["model_version"], rows[0]["created_at"].timestamp(),
        rows[0]["latency_ms"]), shadow)  # fmt: skip


@pytest.mark.parametrize("fail", [False, True], ids=["scores", "challenger-fails"])
def test_a_challenger_scores_the_same_rows_when_they_are_shipped(tmp_path, fail):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60)
    challenger = HalfScores(fail)
    shadowed = [prediction(score=0.8, carrier="AA", distance=1.0) for _ in range(25)]
    for row in shadowed:
        row["features"]["score"] = row["score"]
    plain = [prediction(score=0.6) for _ in range(3)]
    record_request(store, shadowed[:20], challenger)  # a batch request
    record_request(store, plain)  # no challenger
    for row in shadowed[20:]:
        record_request(store, [row], challenger)  # one-row requests
    assert challenger.calls == []  # logging never scores: the writer does, off the request path
    assert store.flush() == 28
    assert challenger.calls == [25]  # every request's rows in one call
    store.close()
    frame = store.predictions_since(START).set_index("prediction_id")
    assert len(frame) == 28  # a failing challenger loses no prediction
    shadow = frame.loc[[row["prediction_id"] for row in shadowed], ["shadow_version", "shadow_score"]]
    if fail:
        assert shadow["shadow_version"].isna().all() and shadow["shadow_score"].isna().all()
    else:
        assert shadow["shadow_version"].eq("2").all() and shadow["shadow_score"].eq(0.4).all()
    assert frame.loc[[row["prediction_id"] for row in plain], "shadow_version"].isna().all()
    assert frame.loc[[row["prediction_id"] for row in plain], "score"].eq(0.6).all()
    assert frame["created_at"].eq(START).all()  # given as seconds since the epoch


def test_a_failed_shipment_keeps_its_rows_for_the_next_attempt(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60)
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE predictions RENAME TO away"))  # the database refuses the log
    rows = [prediction() for _ in range(3)]
    store.record_many(rows)
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        store.flush()
    assert store.stats().pending == 3 and "no such table" in store.stats().last_error
    store.record(prediction())
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE away RENAME TO predictions"))
    assert store.flush() == 4
    assert store.stats().pending == 0 and store.stats().last_error is None and store.stats().written == 4
    store.close()


LOG_AND_DIE = """
import os, signal, sys
from retrain_platform.store import PredictionStore
from retrain_platform_tests.test_store import prediction
store = PredictionStore(sys.argv[1], log_dir=__import__("pathlib").Path(sys.argv[2]), batch_size=10, flush_interval=60)
rows = [prediction() for _ in range(25)]
store.record_many(rows[:10])
store.flush()  # 10 shipped
store.record_many(rows[10:])  # 15 in its segment only
print(" ".join(row["prediction_id"] for row in rows), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_process_s_log_is_replayed_once_at_the_next_start(store_url, tmp_path):
    folder = tmp_path / "log"
    done = subprocess.run([sys.executable, "-c", LOG_AND_DIE, store_url, str(folder)], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    logged = done.stdout.split()
    # A line torn by the kill, after the last answered one: never acknowledged, never stored.
    (segment,) = folder.glob("*.seg")
    with segment.open("ab") as torn:
        torn.write(b'{"prediction_id":"torn","crea')
    reader = PredictionStore(store_url)
    assert reader.count_predictions() == 10
    store = PredictionStore(store_url, log_dir=folder)
    store.start()  # the replay
    assert store.count_predictions() == 25 and list(folder.glob("*.seg")) != [segment]
    store.close()
    assert set(reader.predictions_since(START)["prediction_id"]) == set(logged) and len(logged) == 25
    assert list(folder.iterdir()) == []
    reader.close()


def test_a_segment_is_synced_as_its_policy_says(tmp_path):
    with pytest.raises(ValueError, match="sync policy 'sometimes'"):
        PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", sync="sometimes").record(prediction())
    for policy in ("none", "batch", "always"):
        store = PredictionStore(f"sqlite:///{tmp_path / f'{policy}.db'}", sync=policy)
        store.record_many([prediction(), prediction()])
        store.close()
        assert store.count_predictions() == 2


def test_the_tables_are_created_while_another_worker_holds_the_new_database(tmp_path):
    """Serving workers start together on one fresh SQLite file: while one holds it, another's
    switch to WAL fails at once ("database is locked"); the store looks again instead of failing."""
    import sqlite3

    path = tmp_path / "race.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    release.start()
    try:
        store = PredictionStore(f"sqlite:///{path}")
    finally:
        release.join()
        holder.close()
    store.record(prediction())
    store.close()
    assert PredictionStore(f"sqlite:///{path}").count_predictions() == 1


@pytest.mark.postgres
def test_the_tables_are_created_while_another_worker_creates_them_in_postgres(postgres_url):
    """Two serving workers on a fresh PostgreSQL schema: the second's CREATE TABLE waits for the
    first's commit, then fails on the catalog's unique index; the store looks again instead."""
    with postgres_store_url(postgres_url) as url:
        engine = sa.create_engine(url)
        other = engine.connect()
        transaction = other.begin()
        metadata.create_all(other)  # the other worker's tables, not committed yet
        release = threading.Timer(0.5, transaction.commit)
        release.start()
        try:
            store = PredictionStore(url)
        finally:
            release.join()
            other.close()
            engine.dispose()
        store.record(prediction())
        store.close()
        reopened = PredictionStore(url)
        assert reopened.count_predictions() == 1
        reopened.close()


def test_labels_in_a_batch_are_stored_in_order_each_once(store_url, tmp_path):
    store = PredictionStore(store_url, log_dir=tmp_path / "log", batch_size=1_000, flush_interval=60)
    try:
        rows = [prediction(created_at=START, version="3") for _ in range(4)]
        store.record_many(rows[:3])
        store.flush()
        store.record(rows[3])  # not shipped yet: found in the log's segment and shipped for its label
        store.add_label(rows[0]["prediction_id"], 1)
        ids = [row["prediction_id"] for row in rows]
        results = store.add_labels([(ids[1], 0), (ids[0], 0), ("nope", 1), (ids[3], 1), (ids[1], 1), (ids[2], 1)])
        kinds = [type(result).__name__ for result in results]
        assert kinds == ["LabelRecord", "DuplicateLabel", "UnknownPrediction", "LabelRecord", "DuplicateLabel", "LabelRecord"]
        assert results[3].model_version == "3" and results[1].args[0] == f"prediction {ids[0]!r} is already labelled"
        labelled = store.latest_predictions(10, labelled=True)
        assert dict(zip(labelled["prediction_id"], labelled["label"])) == {ids[0]: 1, ids[1]: 0, ids[3]: 1, ids[2]: 1}
    finally:
        store.close()
