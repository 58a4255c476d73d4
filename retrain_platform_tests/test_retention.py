"""Reads that cost what their window costs, and the log's retention: PostgreSQL drops old days'
partitions whole (labels with their predictions), SQLite deletes old rows in small batches."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from unittest.mock import ANY

import pytest
import sqlalchemy as sa

from retrain_platform.store import LabelRecord, PredictionStore, UnknownPrediction
from retrain_platform.store.schema import add_partitions, day_start
from serving.ids import prediction_id

from .conftest import make_settings
from .serving_fixtures import postgres_store_url
from .test_monitoring import build_definitions, flights_between, serve, served_home, tick  # noqa: F401 - a fixture

NOW = datetime.now(UTC)


def log_days(store: PredictionStore, *days_ago: int) -> dict[int, list[str]]:
    """Two labelled predictions and one without a label per day ago; their ids by day."""
    rows = {ago: [{"prediction_id": str(uuid.uuid4()), "created_at": NOW - timedelta(days=ago, seconds=n),
                   "model_version": "1", "features": {"x": n}, "score": 0.5, "predicted_label": 1}
                  for n in range(3)] for ago in days_ago}  # fmt: skip
    store.record_many([row for day in rows.values() for row in day])
    store.flush()
    for day in rows.values():
        for row in day[:2]:
            store.add_label(row["prediction_id"], 1)
    return {ago: [row["prediction_id"] for row in day] for ago, day in rows.items()}


def kept(store: PredictionStore) -> tuple[set[str], set[str]]:
    with store.engine.connect() as conn:
        return tuple(set(conn.execute(sa.text(f"SELECT prediction_id FROM {t}")).scalars()) for t in ("predictions", "labels"))


@pytest.fixture
def statements():
    """Every SQL statement run while the test runs, by any engine."""
    seen: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", capture)
    yield seen
    sa.event.remove(sa.Engine, "before_cursor_execute", capture)


def test_postgres_drops_old_days_whole_with_their_labels(postgres_url, tmp_path):
    with postgres_store_url(postgres_url) as url:
        store = PredictionStore(url, log_dir=tmp_path / "log")
        add_partitions(store.engine, NOW - timedelta(days=12), 12)  # days made ahead once, back then
        ids = log_days(store, 10, 9, 2, 0)
        old_day = f"predictions_{NOW - timedelta(days=10):%Y%m%d}"
        assert store.engine.connect().execute(sa.text("SELECT to_regclass(:n)"), {"n": old_day}).scalar() is not None
        deleted = store.keep_days(5)
        predictions, labels = kept(store)
        assert predictions == set(ids[2] + ids[0]) and labels == set(ids[2][:2] + ids[0][:2])
        assert deleted == 0  # nothing old was outside a day's partition: whole days went
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": old_day}).scalar() is None
            assert conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": f"labels_{NOW - timedelta(days=10):%Y%m%d}"}).scalar() is None
            ahead = f"predictions_{NOW + timedelta(days=6):%Y%m%d}"
            assert conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": ahead}).scalar() is not None
        store.close()


def test_postgres_deletes_old_rows_of_the_default_partition_in_batches(postgres_url, tmp_path, statements):
    with postgres_store_url(postgres_url) as url:
        store = PredictionStore(url, log_dir=tmp_path / "log")
        ids = log_days(store, 30, 0)  # no partition for 30 days ago: its rows are in the default one
        assert store.keep_days(7, batch=2) == 5  # its 2 labels, then its 3 predictions
        assert kept(store) == (set(ids[0]), set(ids[0][:2]))
        assert sum(s.startswith("DELETE FROM predictions") for s in statements) == 2
        store.close()


def test_sqlite_deletes_old_rows_in_small_batches_and_keeps_newer(tmp_path, statements):
    store = PredictionStore(f"sqlite:///{tmp_path / 'log.db'}", log_dir=tmp_path / "log")
    ids = log_days(store, 40, 8, 6, 1)
    assert store.keep_days(7, batch=2) == 2 * 3 + 2 * 2  # two days' predictions and their labels
    assert kept(store) == (set(ids[6] + ids[1]), set(ids[6][:2] + ids[1][:2]))
    assert sum(s.startswith("DELETE FROM labels") for s in statements) == 3  # 2 + 2, then none left
    assert sum(s.startswith("DELETE FROM predictions") for s in statements) == 4  # 2 + 2 + 2, then none left
    assert store.keep_days(0) == 0 and kept(store)[0] == set(ids[6] + ids[1])  # 0: kept for ever
    store.close()


def test_a_sensor_tick_reads_only_the_rows_after_its_cursor(served_home, statements):
    settings, instance = served_home
    defs = build_definitions(settings)
    serve(settings, flights_between("2013-02-01", "2013-02-25", 400))
    first = tick(defs, instance)
    serve(settings, flights_between("2013-02-01", "2013-02-25", 400, seed=2))
    statements.clear()
    second = tick(defs, instance, cursor=first.cursor)
    assert second.cursor != first.cursor
    log_reads = [s for s in statements if "FROM predictions" in s or "FROM labels" in s]
    counts = [s for s in log_reads if "count(" in s.lower()]
    assert all("created_at >" in s for s in counts), counts  # a count is of a window, never of the log
    assert any("created_at >" in s and "LIMIT" in s for s in log_reads)  # the newest rows after the cursor
    assert all("LIMIT" in s or "created_at >" in s for s in log_reads), log_reads  # nothing unbounded


def days_read(store: PredictionStore, act) -> list[set[str]]:
    """Per statement `act` runs on the log's tables: the day partitions its plan reads (EXPLAIN)."""
    seen = []
    capture = lambda conn, cursor, statement, parameters, context, many: seen.append((statement, parameters))  # noqa: E731
    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        act()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    with store.engine.connect() as conn:
        plans = ["\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())
                 for statement, parameters in seen if statement.startswith("SELECT")]  # fmt: skip
    return [set(re.findall(r"\b(?:predictions|labels)_(?:\d{8}|default)\b", plan)) for plan in plans]


def id_at(when: datetime) -> str:
    """A prediction id as serving makes it, of the time `when`."""
    digits = f"{int(when.timestamp() * 1000):012x}"
    return f"{digits[:8]}-{digits[8:]}{prediction_id()[13:]}"


def test_a_label_looks_its_prediction_up_in_the_day_its_id_names(postgres_url, tmp_path):
    """/feedback finds a prediction by id: in its id's day alone (serving's ids hold their time), not
    in every day's partition. An id of another form, or logged at another time, is found all the same."""
    with postgres_store_url(postgres_url) as url:
        store = PredictionStore(url, log_dir=tmp_path / "log")
        add_partitions(store.engine, NOW - timedelta(days=10), 12)
        noon = day_start(NOW) - timedelta(hours=12)
        row = lambda i, at: {"prediction_id": i, "created_at": at, "model_version": "1", "features": {"x": 1},  # noqa: E731
                             "score": 0.5, "predicted_label": 1}  # fmt: skip
        served, replayed, other = id_at(noon), id_at(noon), str(uuid.uuid4())
        store.record_many([row(served, noon), row(replayed, noon - timedelta(days=5)), row(other, noon - timedelta(days=3))])
        store.flush()
        day = f"{noon:%Y%m%d}"
        assert days_read(store, lambda: store.add_label(served, 1)) == [{f"predictions_{day}"}, {f"labels_{day}"}]
        assert store.add_labels([(replayed, 0), (other, 1), (id_at(noon), 1)])[:2] == [
            LabelRecord(replayed, 0, ANY, "1"), LabelRecord(other, 1, ANY, "1")]  # fmt: skip
        with pytest.raises(UnknownPrediction):
            store.add_label(id_at(noon), 1)
        store.close()


def test_the_newest_rows_are_read_from_their_days_alone(postgres_url, tmp_path):
    """Their time span is read first and given as literals: the planner prunes every other day."""
    with postgres_store_url(postgres_url) as url:
        store = PredictionStore(url, log_dir=tmp_path / "log")
        add_partitions(store.engine, NOW - timedelta(days=10), 12)
        log_days(store, 9, 5, 1)
        read = days_read(store, lambda: store.latest_predictions(2, "1", labelled=True))
        assert read[-1] == {f"predictions_{NOW - timedelta(days=1):%Y%m%d}", f"labels_{NOW - timedelta(days=1):%Y%m%d}"}
        assert len(store.latest_predictions(2, "1", labelled=True)) == 2
        store.close()
