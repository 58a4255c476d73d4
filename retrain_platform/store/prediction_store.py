"""The prediction log and its late labels, in SQL: SQLite by default, PostgreSQL in deployment.
Predictions go through the local log (see `writer`); a label is written at once, since its caller
wants to know whether the prediction exists. Monitoring reads the log back as frames."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .schema import LOG_COLUMNS, AHEAD_DAYS, add_partitions, create_log_tables, create_store_engine
from .schema import day_start, labels, predictions, read_frame, utc_time_text
from .segments import find_line
from .writer import LogWriter, ShadowModel, WriterStats

if TYPE_CHECKING:
    import pandas as pd


def checked_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows as dicts with the `predictions` columns (others ignored), features as a dict or its JSON
    text, `created_at` in any form `as_datetime` takes; checked, so a value JSON cannot hold fails here."""
    checked = [{**{name: row.get(name) for name in LOG_COLUMNS}, "created_at": utc_time_text(row["created_at"]),
                "features": orjson.loads(row["features"]) if isinstance(row["features"], str) else row["features"]}
               for row in rows]  # fmt: skip
    orjson.dumps(checked)  # raises on a value JSON cannot hold
    return checked


def created_in(since: datetime, until: datetime | None, table: sa.Table = predictions) -> sa.ColumnElement[bool]:
    after = table.c.created_at >= since  # a time bound on every read: only the window's days are read
    return after if until is None else after & (table.c.created_at < until)


LABELLED = (labels.c.prediction_id == predictions.c.prediction_id) & (labels.c.created_at == predictions.c.created_at)
LABEL_FIELDS = (labels.c.label, labels.c.labelled_at)
READ = [  # features as JSON text, parsed at once (see `read_frame`)
    *(c for c in predictions.c if c.name != "features"), sa.cast(predictions.c.features, sa.Text).label("features")]


ID_SLACK = timedelta(hours=1)  # between an id's time and its row's: a clock step, a long request
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def id_time(prediction_id: str) -> datetime | None:
    """A version 7 UUID's time (its first 48 bits: milliseconds since the epoch), else None."""
    if UUID7.fullmatch(prediction_id):
        return datetime.fromtimestamp(int(prediction_id[:8] + prediction_id[9:13], 16) / 1000, UTC)
    return None


class UnknownPrediction(LookupError):
    """No prediction with this id was ever logged."""


class DuplicateLabel(ValueError):
    """The prediction already has a label; labels are written once."""


@dataclass(frozen=True)
class LabelRecord:
    prediction_id: str
    label: int
    labelled_at: datetime
    model_version: str


class PredictionStore:
    def __init__(self, url: str, *, log_dir: Path | None = None, sync: str = "batch", batch_size: int = 500,
                 flush_interval: float = 1.0):  # fmt: skip
        """`log_dir`: the local log's (None: a temporary one); `sync`: none, batch or always (docs/serving.md)."""
        self.url = url
        self.engine = create_store_engine(url, durable_commits=sync != "none")
        create_log_tables(self.engine)
        self._log_dir = log_dir
        self._writer_settings = {"sync": sync, "batch_size": batch_size, "interval": flush_interval}
        self._writer: LogWriter | None = None  # made on the first write: readers never need one

    @property
    def writer(self) -> LogWriter:
        if self._writer is None:
            if self._log_dir is None:  # deleted with this store, or at exit
                self._temporary_dir = tempfile.TemporaryDirectory(prefix="prediction-log-")
                self._log_dir = Path(self._temporary_dir.name)
            self._writer = LogWriter(self.engine, self._log_dir, **self._writer_settings)
        return self._writer

    def start(self) -> None:  # replays what dead processes left in the log's folder, then ships in the background
        self.writer.start()

    def close(self) -> None:  # ships every logged prediction, then releases the database connections
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self.engine.dispose()

    def flush(self) -> int:
        return self.writer.flush()

    def record(self, prediction: dict) -> None:  # see `checked_rows`
        self.record_many([prediction])

    def record_many(self, rows: Sequence[dict]) -> None:
        self.writer.append(checked_rows(rows))

    def record_rows(self, rows: list[dict], shadow: ShadowModel | None = None) -> None:  # serving's: unchecked
        self.writer.append(rows, shadow)

    def stats(self) -> WriterStats:
        return self.writer.stats()

    def add_label(self, prediction_id: str, label: int, labelled_at: datetime | None = None) -> LabelRecord:
        """Attach the true outcome to a logged prediction; raises UnknownPrediction or DuplicateLabel."""
        [result] = self.add_labels([(prediction_id, label)], labelled_at)
        if isinstance(result, Exception):
            raise result
        return result

    def add_labels(self, items: Sequence[tuple[str, int]], labelled_at: datetime | None = None) -> list:
        """Labels stored in order in one transaction, each at most once: per item its LabelRecord, or the
        UnknownPrediction or DuplicateLabel that kept it out."""
        labelled_at, ids = labelled_at or datetime.now(UTC), [prediction_id for prediction_id, _ in items]
        found = self._logged(ids)
        # Predictions not shipped yet (by this process or one sharing the folder): shipped now, stored once.
        if lines := [line for i in ids if i not in found and self._log_dir and (line := find_line(self._log_dir, i))]:
            self.writer.store([orjson.loads(line) for line in lines])
            found = self._logged(ids)
        try:
            with self.engine.begin() as conn:
                near = [labels.c.created_at.between(*(f(t for _, t in found.values()) for f in (min, max)))] if found else []
                done = set(conn.execute(sa.select(labels.c.prediction_id).where(labels.c.prediction_id.in_(ids), *near)).scalars())
                results = []
                for prediction_id, label in items:
                    if prediction_id not in found:
                        results.append(UnknownPrediction(f"no prediction with id {prediction_id!r}"))
                    elif prediction_id in done:
                        results.append(DuplicateLabel(f"prediction {prediction_id!r} is already labelled"))
                    else:
                        done.add(prediction_id)
                        results.append(LabelRecord(prediction_id, int(label), labelled_at, found[prediction_id][0]))
                if rows := [{**vars(r), "created_at": found[r.prediction_id][1]} for r in results if isinstance(r, LabelRecord)]:
                    conn.execute(labels.insert(), rows)  # each with its prediction's time and version
        except IntegrityError:  # one was labelled by a concurrent request just now: looked up again
            return self.add_labels(items, labelled_at)
        return results

    def _logged(self, ids: list[str]) -> dict[str, tuple[str, datetime]]:
        """Version and time of each id's prediction: first in the days its id's time names (serving's ids,
        see serving/ids.py), as literal bounds that prune the other days' partitions; any id left, of
        another form or logged at another time (a replay's clock), in every day."""
        query = sa.select(predictions.c.prediction_id, predictions.c.model_version, predictions.c.created_at)
        found, times = {}, [t for i in ids if (t := id_time(i))]
        with self.engine.connect() as conn:
            for bounds in ([(min(times) - ID_SLACK, max(times) + ID_SLACK)] if times else []) + [None]:
                if rest := [i for i in ids if i not in found]:
                    near = [predictions.c.created_at.between(*bounds)] if bounds else []
                    found |= {i: (v, t) for i, v, t in conn.execute(query.where(predictions.c.prediction_id.in_(rest), *near))}
        return found

    # -- reading, for monitoring ---------------------------------------------------------------
    def count_predictions(self, since: datetime | None = None) -> int:  # reads the whole log: never periodic
        query = sa.select(sa.func.count()).select_from(predictions)
        with self.engine.connect() as conn:
            return int(conn.execute(query if since is None else query.where(created_in(since, None))).scalar_one())

    def newest_times(self, limit: int, after: datetime | None = None) -> list[datetime]:
        """Times of the newest `limit` predictions (after `after`, if given), newest first: `limit` rows' cost."""
        query = sa.select(predictions.c.created_at).order_by(predictions.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query if after is None else query.where(predictions.c.created_at > after)).scalars())

    def predictions_since(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Predictions created in [since, until), one column per feature, oldest first."""
        query = sa.select(*READ).where(created_in(since, until))
        return read_frame(self.engine, query.order_by(predictions.c.created_at))

    def latest_predictions(self, limit: int, model_version: str | None = None, labelled: bool = False) -> pd.DataFrame:
        """The newest `limit` predictions (of one model version, if given; only labelled ones,
        with `label` and `labelled_at`, if asked), oldest first."""
        # Their oldest and newest times are read first, from one (version, time) index, the labels' for labelled
        # ones. Given as literals, bounding both tables, they let the planner prune every other day's partition
        # (from a subquery, planning covered every day) and the read touches that span's rows alone.
        table = labels if labelled else predictions
        of_version = lambda side: [] if model_version is None else [side.c.model_version == model_version]  # noqa: E731
        times = sa.select(table.c.created_at).where(*of_version(table)).order_by(table.c.created_at.desc()).limit(limit).subquery()
        with self.engine.connect() as conn:
            span = conn.execute(sa.select(sa.func.min(times.c.created_at), sa.func.max(times.c.created_at))).one()
        query = sa.select(*READ, *LABEL_FIELDS).join(labels, LABELLED) if labelled else sa.select(*READ)
        for side in {predictions, table}:  # a label carries its prediction's time and version
            query = query.where(side.c.created_at.between(*span), *of_version(side))
        newest = query.order_by(table.c.created_at.desc(), predictions.c.prediction_id.desc()).limit(limit)  # ties: by id
        return read_frame(self.engine, newest).iloc[::-1].reset_index(drop=True)

    def labelled_predictions(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Predictions created in [since, until) that have a label, with `label` and `labelled_at`."""
        query = sa.select(*READ, *LABEL_FIELDS).join(labels, LABELLED).where(
            created_in(since, until), created_in(since, until, labels))  # fmt: skip
        return read_frame(self.engine, query.order_by(predictions.c.created_at))

    def label_counts(self, since: datetime, until: datetime | None = None) -> tuple[int, int]:
        """How many predictions were created in [since, until), and how many of them have a label."""
        query = sa.select(*(sa.select(sa.func.count()).select_from(table).where(created_in(since, until, table))
                            .scalar_subquery() for table in (predictions, labels)))  # fmt: skip
        with self.engine.connect() as conn:
            return tuple(conn.execute(query).one())

    def keep_days(self, days: int, batch: int = 5_000) -> int:
        """Retention: predictions older than `days` whole UTC days go, labels first; the coming days'
        partitions are made. PostgreSQL drops old days whole; rows older still (SQLite's, PostgreSQL's
        default partition's) are deleted `batch` per short transaction. Returns how many were."""
        add_partitions(self.engine, datetime.now(UTC), AHEAD_DAYS)
        cutoff, deleted = day_start(datetime.now(UTC)) - timedelta(days=days), 0
        for table in (labels, predictions) if days > 0 else ():  # 0: kept for ever
            if self.engine.dialect.name == "postgresql":
                with self.engine.connect() as conn:
                    days_held = conn.execute(sa.text("SELECT relname FROM pg_inherits JOIN pg_class ON oid = inhrelid "
                                                     "WHERE inhparent = to_regclass(:t)"), {"t": table.name}).scalars()
                    old = [name for name in days_held if name[-8:].isdigit() and name[-8:] < f"{cutoff:%Y%m%d}"]
                for name in old:  # a partition the labels' key refers to is dropped once detached
                    with self.engine.begin() as conn:
                        conn.exec_driver_sql(f"ALTER TABLE {table.name} DETACH PARTITION {name}")
                        conn.exec_driver_sql(f"DROP TABLE {name}")
            older = table.c.created_at < cutoff
            oldest = sa.select(table.c.prediction_id).where(older).limit(batch).scalar_subquery()
            gone = batch
            while gone == batch:  # till a batch comes back short: nothing older is left
                with self.engine.begin() as conn:
                    gone = conn.execute(table.delete().where(older, table.c.prediction_id.in_(oldest))).rowcount
                deleted += gone
        return deleted
