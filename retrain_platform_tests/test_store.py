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

from retrain_platform.store import BatchWriter, DuplicateLabel, PredictionStore, UnknownPrediction, metadata
from retrain_platform.store.insert_process import InsertError, InsertProcess
from retrain_platform.store.inserter import PredictionInserter
from retrain_platform.store.log_chunks import (
    ROW_COLUMNS,
    Chunk,
    decode_batch,
    encode_rows,
    join_chunks,
    prediction_row,
    request_rows,
)
from retrain_platform.store.schema import UTCDateTime, create_tables, is_in_memory
from retrain_platform_tests.serving_fixtures import postgres_store_url

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'predictions.db'}"
    else:
        with postgres_store_url(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture(params=[False, True], ids=["thread", "process"])
def insert_process(request) -> bool:
    """Where the writer stores its batches: a thread in this process, or a child process (serving's)."""
    return request.param


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


def test_queued_predictions_are_written_on_close(store_url, insert_process):
    # A long interval and a big batch: nothing reaches the database before close().
    store = PredictionStore(store_url, batch_size=100_000, flush_interval=60, insert_process=insert_process)
    store.start()
    rows = [prediction() for _ in range(400)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store.record, rows))
    assert store.count_predictions() == 0
    assert store.stats().pending == 400
    store.close()

    reopened = PredictionStore(store_url)
    try:
        assert reopened.count_predictions() == 400
        assert set(reopened.predictions_since(START)["prediction_id"]) == {row["prediction_id"] for row in rows}
    finally:
        reopened.close()


def test_full_batch_is_written_without_waiting_for_the_interval(store_url, insert_process):
    store = PredictionStore(store_url, batch_size=50, flush_interval=60, insert_process=insert_process)
    store.start()
    try:
        store.record_many([prediction() for _ in range(120)])
        deadline = time.monotonic() + 10
        while store.count_predictions() < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count_predictions() >= 100
    finally:
        store.close()
    assert store.count_predictions() == 120


def test_a_batch_with_an_already_stored_prediction_stores_the_rest(store_url, insert_process):
    # What a retry looks like when the first commit landed but its answer was lost.
    store = PredictionStore(store_url, batch_size=1_000, flush_interval=60, insert_process=insert_process)
    first = prediction()
    store.record(first)
    store.flush()
    later = [prediction() for _ in range(3)]
    store.record_many([first, *later])
    assert store.flush() == 4
    assert store.count_predictions() == 4 and store.stats().last_error is None
    store.close()


def test_features_given_as_json_text_are_stored_as_that_json(store_url, insert_process):
    """Serving hands its features over as JSON text (cheaper to hold until the writer runs); other
    writers give a dict. Both read back as the dict, from a batch and from the one-by-one retry."""
    store = PredictionStore(store_url, batch_size=1_000, flush_interval=60, insert_process=insert_process)
    as_dict = prediction(carrier="B6", distance=1e-3, wind_gust=None)
    as_text = {**prediction(), "features": json.dumps({"carrier": "UA", "distance": 2.5, "wind_gust": None})}
    store.record_many([as_dict, as_text])
    assert store.flush() == 2
    retried = {**prediction(), "features": '{"carrier": "DL", "distance": 7.0}'}
    store.record_many([as_text, retried])  # as_text is stored already: the batch goes in row by row
    assert store.flush() == 2
    ids = [row["prediction_id"] for row in (as_dict, as_text, retried)]
    stored = [store.get_prediction(prediction_id)["features"] for prediction_id in ids]
    store.close()
    assert stored == [{"carrier": "B6", "distance": 1e-3, "wind_gust": None},
                      {"carrier": "UA", "distance": 2.5, "wind_gust": None}, {"carrier": "DL", "distance": 7.0}]  # fmt: skip


def test_a_time_is_stored_as_its_instant_in_utc_whatever_its_form(store_url, insert_process):
    # The same instant as UTC, as another offset, at a whole second (orjson then writes no
    # fraction), and on either side of it: each row must come back as its instant and sort by it.
    paris = timezone(timedelta(hours=1))
    times = [START, START.astimezone(paris) + timedelta(microseconds=1), START - timedelta(microseconds=1),
             (START + timedelta(seconds=1, microseconds=123456)).astimezone(paris)]  # fmt: skip
    forms = [*times, START.timestamp() + 2.000007]  # and seconds since the epoch, as serving gives them
    times.append(START + timedelta(seconds=2, microseconds=7))
    store = PredictionStore(store_url, batch_size=100, flush_interval=60, insert_process=insert_process)
    rows = [prediction(created_at) for created_at in forms]
    store.record_many(rows)
    store.close()
    for row, created_at in zip(rows, times, strict=True):
        stored = store.get_prediction(row["prediction_id"])["created_at"]
        assert stored == created_at and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert store.count_predictions(since=START) == 4  # the one a microsecond before is left out
    assert store.count_predictions(since=START.astimezone(paris) + timedelta(microseconds=1)) == 3


def test_sqlite_stores_a_time_as_sqlalchemy_would(tmp_path):
    # The inserter converts times itself: it must write exactly SQLAlchemy's text, or reading back
    # and comparing would break.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    create_tables(engine)
    standard = sa.DateTime().dialect_impl(engine.dialect).bind_processor(engine.dialect)
    instants = [START, START + timedelta(microseconds=7), START - timedelta(microseconds=1),
                START + timedelta(microseconds=999_999), datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC),
                datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]  # fmt: skip
    rows = [prediction(instant) for instant in instants]
    PredictionInserter(engine).insert(join_chunks([Chunk(encode_rows(rows))]))
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT prediction_id, created_at FROM predictions")).all())
    assert [stored[row["prediction_id"]] for row in rows] == [standard(at.replace(tzinfo=None)) for at in instants]
    # SQLAlchemy writes other times (labels', queries') through the column type: the same text, from
    # any form it takes.
    fast = UTCDateTime().bind_processor(engine.dialect)
    for instant in instants:
        expected = standard(instant.replace(tzinfo=None))
        as_text = orjson.dumps(instant).decode()[1:-1]
        assert fast(instant) == fast(as_text) == fast(instant.astimezone(timezone(timedelta(hours=-5)))) == expected
        assert fast(instant.timestamp()) == expected
    assert fast(None) is None
    for naive in (datetime(2026, 3, 1), "2026-03-01T12:00:00"):
        with pytest.raises(ValueError, match="naive datetime"):
            encode_rows([prediction(naive)])


def test_labels_are_written_once_and_only_for_known_predictions(store_url, insert_process):
    store = PredictionStore(store_url, batch_size=1_000, flush_interval=60, insert_process=insert_process)
    store.start()
    try:
        row = prediction(version="7")
        store.record(row)
        # Still queued: the label must not be refused because the writer has not run yet.
        ack = store.add_label(row["prediction_id"], 1)
        assert (ack.label, ack.model_version) == (1, "7")
        assert ack.labelled_at.tzinfo is not None
        with pytest.raises(DuplicateLabel, match="already labelled"):
            store.add_label(row["prediction_id"], 0)
        with pytest.raises(UnknownPrediction, match="no prediction with id 'nope'"):
            store.add_label("nope", 1)
        # An unknown id while predictions are queued: they are stored, then the id is looked up again.
        store.record(prediction(version="8"))
        with pytest.raises(UnknownPrediction, match="no prediction with id 'nope'"):
            store.add_label("nope", 1)
        assert store.stats().pending == 0 and store.count_predictions() == 2
    finally:
        store.close()


def test_reading_helpers_for_monitoring(store_url, insert_process):
    store = PredictionStore(store_url, insert_process=insert_process)
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

        assert store.label_coverage(START) == pytest.approx(2 / 4)
        assert store.label_coverage(START - timedelta(days=7)) == pytest.approx(3 / 7)
        assert store.label_coverage(START + timedelta(days=1)) is None
        assert store.label_counts(START - timedelta(days=7)) == (7, 3)
        assert store.predictions_since(START + timedelta(days=1)).empty
        assert store.count_predictions(since=START) == 4
    finally:
        store.close()


def test_a_batch_holds_its_chunks_rows_in_order():
    one = prediction(score=0.1, carrier="UA", distance=2.5, note="line\nbreak")  # escaped by JSON: no split
    later = START + timedelta(minutes=1)
    shadowed = {**prediction(later, score=0.3), "shadow_version": "4", "shadow_score": 0.35}
    batch = [prediction(score=0.2, version="2"), shadowed]
    rows = decode_batch(join_chunks([Chunk(encode_rows([one])), Chunk(encode_rows(batch))]))
    columns = dict(zip(ROW_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    expected = [one, *batch]
    assert columns["prediction_id"] == [row["prediction_id"] for row in expected]
    assert columns["score"] == [0.1, 0.2, 0.3] and columns["shadow_score"] == [None, None, 0.35]
    assert columns["model_version"] == ["1", "2", "1"] and columns["shadow_version"] == [None, None, "4"]
    assert [orjson.loads(text) for text in columns["features"]] == [row["features"] for row in expected]
    assert columns["created_at"] == [START.timestamp(), START.timestamp(), later.timestamp()]
    assert decode_batch(join_chunks([])) == []
    times = []
    converted = decode_batch(join_chunks([Chunk(encode_rows(expected))]), lambda values: times.extend(values) or "tuv")
    assert times == columns["created_at"] and [row[1] for row in converted] == ["t", "u", "v"]  # in one call
    with pytest.raises(ValueError, match="different numbers of values: prediction_id 1, created_at 1, model_version 1, "
                       "features 2"):  # fmt: skip
        decode_batch(join_chunks([Chunk(encode_rows([one]))]) + b"\n{}")


def test_a_request_s_rows_share_its_version_time_and_latency():
    at = START.timestamp() + 0.000123  # serving's time: seconds since the epoch
    rows = request_rows([{"x": 1}, {"x": 2}], ["a", "b"], [0.1, 0.9], [0, 1], "3", at, 0.5)
    assert rows == [("a", at, "3", {"x": 1}, 0.1, 0, None, None, 0.5), ("b", at, "3", {"x": 2}, 0.9, 1, None, None, 0.5)]
    assert prediction_row("c", at, "3", {"x": 3}, 0.2, 0, 0.5) == request_rows([{"x": 3}], ["c"], [0.2], [0], "3", at, 0.5)[0]


def test_a_row_the_log_cannot_encode_fails_its_caller_or_alone_its_batch(tmp_path):
    with pytest.raises(TypeError):
        encode_rows([prediction(carrier=object())])
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60)
    good = prediction()
    row = encode_rows([prediction()])[0]
    bad = (*row[:3], {"carrier": object()}, *row[4:])
    store.record_chunk(Chunk([bad, *encode_rows([good])]))  # as if a caller had queued it unchecked
    assert store.flush() == 2  # handed on; the bad row dropped, not retried for ever
    assert store.stats().pending == 0 and store.count_predictions() == 1
    assert store.get_prediction(good["prediction_id"]) is not None
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
    store.record_chunk(Chunk(request_rows(
        [row["features"] for row in rows], [row["prediction_id"] for row in rows], [row["score"] for row in rows],
        [row["predicted_label"] for row in rows], rows[0]["model_version"], rows[0]["created_at"].timestamp(),
        rows[0]["latency_ms"]), shadow))  # fmt: skip


@pytest.mark.parametrize("fail", [False, True], ids=["scores", "challenger-fails"])
def test_a_challenger_scores_the_same_rows_when_they_are_written(tmp_path, insert_process, fail):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60,
                            insert_process=insert_process)  # fmt: skip
    challenger = HalfScores(fail)
    shadowed = [prediction(score=0.8, carrier="AA", distance=1.0) for _ in range(25)]
    for row in shadowed:
        row["features"]["score"] = row["score"]
    plain = [prediction(score=0.6) for _ in range(3)]
    record_request(store, shadowed[:20], challenger)  # a batch request
    record_request(store, plain)  # no challenger
    for row in shadowed[20:]:
        record_request(store, [row], challenger)  # one-row requests
    assert challenger.calls == []  # recording never scores: the writer does, off the request path
    assert store.flush() == 28
    assert challenger.calls == [25]  # every chunk of a batch in one call
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


def test_a_failed_write_keeps_its_rows_for_the_next_attempt():
    written, attempts = [], []

    def flaky_write(items):
        attempts.append(len(items))
        if len(attempts) == 1:
            raise ConnectionError("database went away")
        written.extend(items)

    writer = BatchWriter(flaky_write, batch_size=1_000, interval=60)
    writer.submit("first two", rows=2)
    writer.submit("third")
    with pytest.raises(ConnectionError):
        writer.flush()
    assert writer.stats().pending == 3 and "went away" in writer.stats().last_error
    writer.submit("fourth")
    writer.close()
    assert written == ["first two", "third", "fourth"]  # arrival order kept
    assert writer.stats().pending == 0 and writer.stats().last_error is None
    # After close nothing would flush a queue, so a late item is written at once.
    writer.submit("late")
    assert written[-1] == "late" and writer.stats().written == 5


def test_a_flush_writes_about_batch_size_rows_per_transaction_without_splitting_an_item():
    transactions = []
    writer = BatchWriter(lambda items: transactions.append(items), batch_size=3, interval=60)
    for i, size in enumerate([1, 1, 5, 1, 2, 1]):
        writer.submit(i, rows=size)
    assert writer.flush() == 11
    # Items are taken until a transaction holds batch_size rows; a big item is never split.
    assert transactions == [[0, 1, 2], [3, 4], [5]]


def test_the_insert_process_keeps_every_value_and_ignores_other_keys(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60, insert_process=True)
    exact = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    row = {**prediction(exact, score=0.123456789, carrier="B6", wind_gust=None, distance=1e-3),
           "shadow_version": "3", "shadow_score": 0.25, "_shadow": object()}  # fmt: skip
    store.record(row)
    assert store.flush() == 1
    stored = store.get_prediction(row["prediction_id"])
    store.close()
    assert stored["created_at"] == exact and stored["score"] == 0.123456789
    assert stored["features"] == {"carrier": "B6", "wind_gust": None, "distance": 1e-3}
    assert (stored["shadow_version"], stored["shadow_score"], stored["model_version"]) == ("3", 0.25, "1")


def test_a_dead_insert_process_is_replaced_and_loses_nothing(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=1_000, flush_interval=60, insert_process=True)
    store.record(prediction())
    assert store.flush() == 1
    child = store._insert_process._child
    child.kill()
    child.wait()
    store.record_many([prediction() for _ in range(3)])
    assert store.flush() == 3
    assert store._insert_process._child.pid != child.pid
    store.close()
    assert store._insert_process._child is None and child.returncode is not None
    assert store.count_predictions() == 4


def test_batches_a_dying_insert_process_had_not_answered_are_sent_again(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=10, flush_interval=60, insert_process=True)
    try:
        store._insert_process.start()
        child = store._insert_process._child
        os.kill(child.pid, signal.SIGSTOP)  # it cannot answer
        rows = [prediction() for _ in range(10)]
        store.record_many(rows)  # handed on, unanswered
        assert len(store._insert_process.unanswered) == 1 and store.stats().pending == 10
        child.kill()
        with pytest.raises(InsertError, match="stopped before answering"):
            store.flush()  # finds it lost, and queues it again
        assert store.flush() == 10  # to a new child
        assert store._insert_process._child.pid != child.pid
        assert set(store.predictions_since(START)["prediction_id"]) == {row["prediction_id"] for row in rows}
    finally:
        store.close()


def test_a_full_pipe_holds_up_neither_the_sender_nor_a_batch(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    PredictionStore(url).close()  # the tables
    inserter = InsertProcess(url)
    try:
        inserter.start()
        os.kill(inserter._child.pid, signal.SIGSTOP)  # it reads nothing: the pipe fills
        rows = [prediction(note="x" * 2_000) for _ in range(1_000)]  # ~2 MB, twice what the pipe holds
        batches = [join_chunks([Chunk(encode_rows(rows[i : i + 250]))]) for i in range(0, 1_000, 250)]
        sender = threading.Thread(target=lambda: [inserter.send(batch, i) for i, batch in enumerate(batches)])
        sender.start()
        sender.join(timeout=20)
        assert not sender.is_alive()  # returned at once, the rest waiting in this process
        os.kill(inserter._child.pid, signal.SIGCONT)
        assert inserter.answers(wait=True) == [(0, None), (1, None), (2, None), (3, None)]
    finally:
        os.kill(inserter._child.pid, signal.SIGCONT)  # if the test failed with the child stopped
        sender.join()
        inserter.close()
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one() == 1_000


def test_the_insert_process_ends_with_its_parent(tmp_path):
    # The parent is killed outright (no close): its child sees its stdin close and exits.
    script = f"""
import os, signal, sys
from retrain_platform.store import PredictionStore
from retrain_platform_tests.test_store import prediction
store = PredictionStore("sqlite:///{tmp_path / 'p.db'}", insert_process=True)
store.record(prediction())
store.flush()
print(store._insert_process._child.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.strip())
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_the_insert_process_is_out_of_reach_of_ctrl_c_but_scheduled_with_the_server(tmp_path):
    """A process group of its own (a terminal's Ctrl-C goes to the server's group, not to it), in
    the server's session (Linux gives each session an equal share of the CPU under autogroup
    scheduling: a session of its own would weigh as much as every worker together), and only on
    CPU below the workers'."""
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", insert_process=True)
    try:
        store.record(prediction())
        store.flush()
        child = store._insert_process._child.pid
        assert os.getpgid(child) == child != os.getpgid(0)
        assert os.getsid(child) == os.getsid(0)
        assert os.sched_getscheduler(child) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, child) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
    finally:
        store.close()


def test_the_request_that_fills_a_batch_hands_it_to_the_insert_process_itself(tmp_path):
    """No writer thread runs here (the store is not started): the batch is stored only because
    the submitter handed it on, without waiting for the insert process."""
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=50, flush_interval=60, insert_process=True)
    try:
        store.record_many([prediction() for _ in range(49)])
        assert store._insert_process.unanswered == []  # not full yet
        store.record(prediction())
        deadline = time.monotonic() + 30
        while store.count_predictions() < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count_predictions() == 50
    finally:
        store.close()
    assert store.stats().pending == 0 and store.stats().written == 50


def test_a_batch_the_insert_process_could_not_store_is_kept_and_stored_later(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}", batch_size=10, flush_interval=60, insert_process=True)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE labels"))
            conn.execute(sa.text("DROP TABLE predictions"))
        rows = [prediction() for _ in range(10)]
        store.record_many(rows)  # a full batch: handed on at once, and refused
        with pytest.raises(InsertError, match="no such table"):
            store.flush()
        stats = store.stats()
        assert (stats.pending, stats.written, stats.failed_writes) == (10, 0, 1) and "no such table" in stats.last_error
        # For an interval after a failure, requests leave the retries to the writer thread.
        more = [prediction() for _ in range(10)]
        store.record_many(more)
        assert store._insert_process.unanswered == [] and store.stats().pending == 20
        create_tables(store.engine)
        assert store.flush() == 20
        assert store.stats().last_error is None and store.stats().pending == 0 and store.stats().written == 20
        assert set(store.predictions_since(START)["prediction_id"]) == {row["prediction_id"] for row in rows + more}
    finally:
        store.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_insert_process_reports_why_a_batch_failed():
    # Nothing listens on port 1: the child's connection fails and its error comes back.
    inserter = InsertProcess("postgresql+psycopg2://nobody@127.0.0.1:1/none", stop_timeout=10)
    try:
        inserter.send(join_chunks([Chunk(encode_rows([prediction()]))]), "the batch")
        [(token, why)] = inserter.answers(wait=True)
        assert token == "the batch" and "OperationalError" in why
    finally:
        inserter.close()


def test_an_in_memory_store_cannot_use_an_insert_process():
    with pytest.raises(ValueError, match="in-memory database cannot be written by another process"):
        PredictionStore("sqlite://", insert_process=True)
    # A PostgreSQL URL without a database name (the user's default database) is a server, not memory.
    assert is_in_memory("sqlite:///:memory:") and not is_in_memory("postgresql+psycopg2://someone@127.0.0.1/")


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
