"""The prediction log and its late labels, in SQL: SQLite by default, PostgreSQL in deployment.

Serving only enqueues predictions (see `BatchWriter`); labels are written at once, since the
caller wants to know whether its prediction id exists. Monitoring reads the log back as frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .batch_writer import BatchWriter, WriterStats
from .insert_process import InsertError, InsertProcess
from .inserter import PredictionInserter
from .log_chunks import Chunk, encode_rows, join_chunks, with_shadow_scores
from .schema import PREDICTION_COLUMNS, create_store_engine, create_tables, is_in_memory, labels, predictions, utcnow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def labelled_share(total: int, labelled: int) -> float | None:
    """The share of `total` predictions that have a label; None when there are none."""
    return labelled / total if total else None


def _score_shadows(chunks: list[Chunk]) -> list[Chunk]:
    """Runs in the writer thread, away from the response path: each challenger scores its chunks
    together. Chunks whose challenger fails are stored without shadow scores rather than not at all."""
    by_model: dict[int, list[int]] = {}
    for index, chunk in enumerate(chunks):
        if chunk.shadow is not None:
            by_model.setdefault(id(chunk.shadow), []).append(index)
    scored = list(chunks)
    for indices in by_model.values():
        model = chunks[indices[0]].shadow
        try:
            shadowed = with_shadow_scores([chunks[index] for index in indices], model)
        except Exception:
            log.exception("shadow scoring by version %s failed; storing the predictions without", model.version)
            continue
        for index, chunk in zip(indices, shadowed, strict=True):
            scored[index] = chunk
    return scored


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
    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        insert_process: bool = False,
    ):
        """With `insert_process`, a process of its own stores the batches (see `insert_process`):
        for serving, whose interpreter should spend its time on requests."""
        self.url = url
        if insert_process and is_in_memory(url):
            raise ValueError(f"{url}: an in-memory database cannot be written by another process")
        self.engine = create_store_engine(url)
        create_tables(self.engine)
        # Each batch handed over goes with its chunks, which come back if the batch was not stored.
        self._insert_process: InsertProcess[list[Chunk]] | None = InsertProcess(url) if insert_process else None
        self._inserter = PredictionInserter(self.engine)
        self.writer: BatchWriter[Chunk] = BatchWriter(
            self._insert, batch_size=batch_size, interval=flush_interval, prepare=_score_shadows,
            settle=self._settle if insert_process else None, name="prediction-writer",
        )  # fmt: skip

    def _insert(self, chunks: list[Chunk]) -> None:
        """Store a batch, or hand it to the insert process (which answers later: see `_settle`)."""
        payload = join_chunks(chunks)
        if self._insert_process is None:
            self._inserter.insert(payload)
        else:
            self._insert_process.send(payload, chunks)

    def _settle(self, wait: bool) -> None:
        """The insert process's answers so far (all, if `wait`): failed batches are queued again."""
        answered = self._insert_process.answers(wait)
        failed = [(chunks, why) for chunks, why in answered if why is not None]
        for chunks, why in reversed(failed):  # each goes in front: the oldest last
            self.writer.put_back([(len(chunk.rows), chunk) for chunk in chunks], InsertError(why))
        if failed:
            raise InsertError(f"{len(failed)} of {len(answered)} batches failed, the last because: {failed[-1][1]}")
        if answered:
            self.writer.stored()

    # -- writing --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._insert_process is not None:
            self._insert_process.start()  # now, not in the request that fills the first batch
        self.writer.start()

    def close(self) -> None:
        """Flush every queued prediction, then release the database connections."""
        try:
            self.writer.close()
        finally:
            if self._insert_process is not None:
                self._insert_process.close()
            self.engine.dispose()

    def flush(self) -> int:
        return self.writer.flush()

    def record(self, prediction: dict) -> None:
        """Queue one prediction (a dict with the `predictions` columns) for the writer thread."""
        self.record_many([prediction])

    def record_many(self, rows: list[dict]) -> None:
        self.record_chunk(Chunk(encode_rows(rows)))

    def record_chunk(self, chunk: Chunk) -> None:
        """Queue a request's predictions (see `log_chunks`): serving's way. The chunk's challenger,
        if any, scores the same rows in the writer thread.

        With an insert process, the request that fills a batch hands it over itself: that is a
        write into a pipe, and waking the writer thread for it would cost the requests more (see
        `BatchWriter`). Not a batch to shadow: its scoring is work for the thread."""
        self.writer.submit(chunk, len(chunk.rows), write_if_full=self._insert_process is not None and chunk.shadow is None)

    def stats(self) -> WriterStats:
        """The writer's figures, the batches the insert process has not answered yet counted as pending."""
        stats = self.writer.stats()
        if self._insert_process is None:
            return stats
        unanswered = sum(len(chunk.rows) for chunks in self._insert_process.unanswered for chunk in chunks)
        return replace(stats, pending=stats.pending + unanswered, written=stats.written - unanswered)

    def add_label(self, prediction_id: str, label: int, labelled_at: datetime | None = None) -> LabelRecord:
        """Attach the true outcome to a logged prediction; raises UnknownPrediction or DuplicateLabel."""
        labelled_at = labelled_at or utcnow()
        try:
            return self._add_label(prediction_id, int(label), labelled_at)
        except UnknownPrediction:
            # The label may have come before the writer stored its prediction: store what is queued
            # and look again. (Only a miss pays for this; the request path keeps no list of ids.)
            if not self.stats().pending:
                raise
            self.flush()
            return self._add_label(prediction_id, int(label), labelled_at)

    def _add_label(self, prediction_id: str, label: int, labelled_at: datetime) -> LabelRecord:
        with self.engine.begin() as conn:
            version = conn.execute(
                sa.select(predictions.c.model_version).where(predictions.c.prediction_id == prediction_id)
            ).scalar_one_or_none()
            if version is None:
                raise UnknownPrediction(f"no prediction with id {prediction_id!r}")
            existing = conn.execute(sa.select(labels.c.label).where(labels.c.prediction_id == prediction_id)).first()
            if existing is not None:
                raise DuplicateLabel(f"prediction {prediction_id!r} is already labelled {existing.label}")
            try:
                conn.execute(labels.insert().values(prediction_id=prediction_id, label=label, labelled_at=labelled_at))
            except IntegrityError as err:  # a concurrent label for the same id won the race
                raise DuplicateLabel(f"prediction {prediction_id!r} is already labelled") from err
        return LabelRecord(prediction_id, label, labelled_at, version)

    # -- reading, for monitoring ---------------------------------------------------------------
    def count_predictions(self, since: datetime | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(predictions)
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def get_prediction(self, prediction_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(predictions).where(predictions.c.prediction_id == prediction_id)).first()
        return dict(row._mapping) if row is not None else None

    def predictions_since(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Predictions created in [since, until), one column per feature, oldest first."""
        query = sa.select(predictions).where(predictions.c.created_at >= since)
        if until is not None:
            query = query.where(predictions.c.created_at < until)
        return self._frame(query.order_by(predictions.c.created_at), PREDICTION_COLUMNS)

    def latest_predictions(self, limit: int, model_version: str | None = None, labelled: bool = False) -> pd.DataFrame:
        """The newest `limit` predictions (of one model version, if given; only labelled ones,
        with `label` and `labelled_at`, if asked), oldest first."""
        if labelled:
            query = sa.select(predictions, labels.c.label, labels.c.labelled_at).join(
                labels, labels.c.prediction_id == predictions.c.prediction_id)  # fmt: skip
            columns = [*PREDICTION_COLUMNS, "label", "labelled_at"]
        else:
            query, columns = sa.select(predictions), PREDICTION_COLUMNS
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)
        newest = query.order_by(predictions.c.created_at.desc()).limit(limit)
        return self._frame(newest, columns).iloc[::-1].reset_index(drop=True)

    def labelled_predictions(self, since: datetime, until: datetime | None = None) -> pd.DataFrame:
        """Predictions created in [since, until) that have a label, with `label` and `labelled_at`."""
        query = sa.select(predictions, labels.c.label, labels.c.labelled_at).join(
            labels, labels.c.prediction_id == predictions.c.prediction_id
        ).where(predictions.c.created_at >= since)  # fmt: skip
        if until is not None:
            query = query.where(predictions.c.created_at < until)
        return self._frame(query.order_by(predictions.c.created_at), [*PREDICTION_COLUMNS, "label", "labelled_at"])

    def label_counts(self, since: datetime, until: datetime | None = None) -> tuple[int, int]:
        """How many predictions were created in [since, until), and how many of them have a label."""
        window = predictions.c.created_at >= since
        if until is not None:
            window = window & (predictions.c.created_at < until)
        query = sa.select(sa.func.count(predictions.c.prediction_id), sa.func.count(labels.c.prediction_id)).select_from(
            predictions.outerjoin(labels, labels.c.prediction_id == predictions.c.prediction_id)
        ).where(window)  # fmt: skip
        with self.engine.connect() as conn:
            total, labelled = conn.execute(query).one()
        return total, labelled

    def label_coverage(self, since: datetime, until: datetime | None = None) -> float | None:
        """Share of the predictions created in [since, until) that have a label; None if there are none."""
        return labelled_share(*self.label_counts(since, until))

    def _frame(self, query, columns: list[str]) -> pd.DataFrame:
        # Imported here: serving's insert processes import this package and never read frames,
        # and pandas would double each one's memory.
        import pandas as pd

        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        meta = pd.DataFrame.from_records([{c: row[c] for c in columns} for row in rows], columns=columns)
        features = pd.DataFrame.from_records([row["features"] for row in rows])
        for name in ("created_at", "labelled_at"):
            if name in meta:
                meta[name] = pd.to_datetime(meta[name], utc=True)
        floats = ["score", "shadow_score", "latency_ms"]
        meta[floats] = meta[floats].astype("float64")
        # Feature names come from the spec and never clash with the log's own columns.
        return pd.concat([meta, features.drop(columns=[c for c in features if c in meta], errors="ignore")], axis=1)
