"""The prediction log's reads at scale: PostgreSQL filled by SQL (generate_series) with 1 and 10
million predictions at one rate (`--per-day`, 30 % labelled; version 2 serves the newest 3 days,
version 1 before), then every read a drift sensor tick, a drift report and a retrain make, timed
(median of `--repeat`) and printed as a ratio against the same read at 1 million rows, with the
machine's load average, the fill rate and the log's size on disk. Target: each ≤ 100 ms and flat:
a read costs what its window costs, not what the history holds. 100 million rows (about 44 GB, an
hour to fill on two cores) are filled only with `--huge` and enough free disk; otherwise skipped.

Everything lives in a schema of its own (`--schema`), dropped at the end.

    .venv/bin/python benchmarks/log_scale.py [--url postgresql+psycopg2://postgres@127.0.0.1:5432/test]
"""

import argparse
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from retrain_platform.store import PredictionStore
from retrain_platform.store.schema import add_partitions

NOW = datetime.now(UTC).replace(microsecond=0)
HUGE_BYTES = 60 * 2**30  # 100 million rows take about 44 GB (measured at 10 million), with room to spare


def fill(store: PredictionStore, first: int, last: int, per_day: int) -> None:
    """Rows `first`..`last` (1: the newest), one every 86,400 / `per_day` s back from now, a day per statement."""
    step = 86_400 / per_day
    add_partitions(store.engine, NOW - timedelta(seconds=last * step), int(last / per_day) + 2)
    for start in range(first, last + 1, per_day):
        end = min(start + per_day - 1, last)
        with store.engine.begin() as conn:
            conn.execute(sa.text(f"""
                INSERT INTO predictions SELECT md5(i::text)::uuid::text, CAST(:now AS timestamptz) - i * interval '{step} seconds',
                    CASE WHEN i <= 3 * {per_day} THEN '2' ELSE '1' END,
                    json_build_object('distance', i % 2000, 'carrier', 'AA', 'temp', (i % 90)::float),
                    (i % 1000) / 1000.0, (i % 3 = 0)::int, NULL, NULL, 1.0
                FROM generate_series({start}, {end}) AS i"""), {"now": NOW})
            conn.execute(sa.text("""
                INSERT INTO labels SELECT prediction_id, created_at, model_version, created_at + interval '1 hour',
                    (abs(hashtext(prediction_id)) % 2) FROM predictions
                WHERE created_at > :a AND created_at <= :b AND abs(hashtext(prediction_id)) % 10 < 3"""),
                                 {"a": NOW - timedelta(seconds=(end + 1) * step), "b": NOW - timedelta(seconds=start * step)})
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE predictions")  # as autovacuum would: index-only counts
        conn.exec_driver_sql("VACUUM ANALYZE labels")


def reads(store: PredictionStore) -> dict[str, callable]:
    """What each periodic reader runs (see monitoring/sensors.py, monitor.py, resources.py, sources.py)."""
    day = NOW - timedelta(days=1)
    return {
        "sensor: new rows after the cursor (500)": lambda: store.newest_times(500, after=NOW - timedelta(minutes=5)),
        "sensor/report: newest 5,000 of the production version": lambda: store.latest_predictions(5_000, "2"),
        "sensor/report: newest 5,000 labelled of it": lambda: store.latest_predictions(5_000, "2", labelled=True),
        "newest 5,000 of an older version": lambda: store.latest_predictions(5_000, "1"),
        "newest 5,000 labelled of an older version": lambda: store.latest_predictions(5_000, "1", labelled=True),
        "sensor/gate: label_counts(7 days)": lambda: store.label_counts(NOW - timedelta(days=7)),
        "health sensor: label_counts of one day": lambda: store.label_counts(day - timedelta(days=1), day),
        "retrain: labelled rows of 1 day": lambda: store.labelled_predictions(day),
    }


def timed(read, repeat: int) -> float:
    read()  # warm: the first read of a new size pays for the cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def log_bytes(store: PredictionStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                                        "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'")).scalar())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    parser.add_argument("--schema", default="log_scale_bench")
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--huge", action="store_true", help="also 100 million rows, when the disk has room")
    args = parser.parse_args()
    sizes = list(args.sizes)
    if args.huge and shutil.disk_usage("/").free >= HUGE_BYTES:
        sizes.append(100_000_000)
    else:
        print(f"100 million rows skipped: {'--huge not given' if not args.huge else 'under 60 GB free on /'}")
    admin = sa.create_engine(args.url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE; CREATE SCHEMA "{args.schema}"')
    store = PredictionStore(f"{args.url}?options=-csearch_path%3D{args.schema}")
    try:
        baseline, filled = {}, 0
        for size in sizes:
            start = time.perf_counter()
            fill(store, filled + 1, size, args.per_day)  # older days behind the newest: the same recent window
            rate, gb = (size - filled) / (time.perf_counter() - start), log_bytes(store) / 1e9
            filled = size
            print(f"\n{size:,} rows ({size // args.per_day} days, {gb:.1f} GB on disk) filled at {rate:,.0f} rows/s "
                  f"(100 million would take {1e8 / rate / 60:.0f} min and {gb * 1e8 / size:.0f} GB)")
            print(f"  load average before the reads: {os.getloadavg()[0]:.1f}")
            for name, read in reads(store).items():
                seconds = timed(read, args.repeat)
                baseline.setdefault(name, seconds)
                print(f"  {name:<55} {seconds * 1000:8.1f} ms   ×{seconds / baseline[name]:.2f}")
            print(f"  load average after the reads: {os.getloadavg()[0]:.1f}")
    finally:
        store.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{args.schema}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    main()
