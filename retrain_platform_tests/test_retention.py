"""Reads that cost what their window costs, and the log's retention: PostgreSQL drops old days'
partitions whole (labels with their predictions), SQLite deletes old rows in small batches."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from retrain_platform.store import PredictionStore
from retrain_platform.store.schema import add_partitions

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
