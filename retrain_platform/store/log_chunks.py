"""Predictions as the request path queues them for the log (chunks), and as the writer hands them to
whatever stores them (batches).

A chunk is one request's predictions: its rows, each a tuple of the log's values in ROW_COLUMNS
order (`created_at` in seconds since the epoch, `features` a dict), and the challenger, if any,
that is to score them too. A request makes its chunk and queues it, nothing more. A batch, what
is stored in one transaction, is encoded when it is handed over (by the request that fills it, or
by the writer thread), with no Python per row: its rows' values column by column as one JSON
array on the first line (features left out), then each row's features as a line of JSON (orjson
never writes a newline, so the lines split back exactly).

Why this shape: each object made and each call on the request path costs every request there, in
instructions and in the caches they evict, where a batch's encoding runs in C. The process that
stores a batch (the insert process, when there is one) parses its columns in one call, never parses
the features (they arrive as the JSON text the log stores), and zips the columns into rows: no
Python per row there either. Its work runs on the cores that the requests also use: each
microsecond per row there costs throughput.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain, repeat
from typing import NamedTuple, Protocol

import orjson

from .schema import as_datetime, features_mapping

log = logging.getLogger(__name__)

# A row's values, in order, as the inserter's statement names them.
ROW_COLUMNS = ("prediction_id", "created_at", "model_version", "features", "score", "predicted_label",
               "shadow_version", "shadow_score", "latency_ms")  # fmt: skip
CREATED_AT, FEATURES, SHADOW_VERSION, SHADOW_SCORE = (
    ROW_COLUMNS.index(name) for name in ("created_at", "features", "shadow_version", "shadow_score")
)


class ShadowModel(Protocol):
    """The challenger that scores the same rows off the request path."""

    version: str

    def score_rows(self, rows: list[dict]) -> Sequence[float]: ...


class Chunk(NamedTuple):
    """One request's rows (tuples in ROW_COLUMNS order) and the challenger to shadow them with."""

    rows: list[tuple]
    shadow: ShadowModel | None = None


def prediction_row(prediction_id: str, created_at: float, model_version: str, features: dict, score: float,
                   label: int, latency_ms: float | None) -> tuple:  # fmt: skip
    """The row of a one-row request."""
    return (prediction_id, created_at, model_version, features, score, label, None, None, latency_ms)


def request_rows(features: Sequence[dict], ids: Sequence[str], scores: Sequence[float], labels: Sequence[int],
                 model_version: str, created_at: float, latency_ms: float | None) -> list[tuple]:  # fmt: skip
    """The rows of a request of several predictions, which share a version, a time and a latency
    (no Python per row: serving's batches hold up to thousands)."""
    return list(zip(ids, repeat(created_at), repeat(model_version), features, scores, labels, repeat(None),
                    repeat(None), repeat(latency_ms), strict=False))  # fmt: skip


def encode_rows(rows: Sequence[dict]) -> list[tuple]:
    """Rows given as dicts with the `predictions` columns (other keys are ignored): features as a
    dict or its JSON text, `created_at` as an aware datetime, its ISO 8601 text or seconds since
    the epoch. Checked here, so that a value the log cannot store fails its caller, not a batch."""
    encoded = [
        (row["prediction_id"], _epoch_seconds(row["created_at"]), row["model_version"],
         features_mapping(row["features"]), row["score"], row["predicted_label"], row.get("shadow_version"),
         row.get("shadow_score"), row.get("latency_ms"))
        for row in rows
    ]  # fmt: skip
    orjson.dumps(encoded)  # raises on a value JSON cannot hold
    return encoded


def _epoch_seconds(value: datetime | str | float) -> float:
    return value if isinstance(value, (int, float)) else as_datetime(value).timestamp()


def join_chunks(chunks: Sequence[Chunk]) -> bytes:
    """The batch that stores `chunks` (see above)."""
    rows = list(chain.from_iterable([chunk.rows for chunk in chunks]))
    try:
        return _encode(rows)
    except TypeError:
        # A row that JSON cannot hold (a caller's bug: serving's values are validated) must not
        # hold back the batch, which would be queued again and fail again: the rest is stored.
        return _encode(list(filter(_encodable, rows)))


def _encode(rows: list[tuple]) -> bytes:
    columns = list(zip(*rows, strict=True)) or [()] * len(ROW_COLUMNS)
    features = columns.pop(FEATURES)
    # Each row's features copied out of orjson's output at once: orjson's outputs are allocated
    # oversized, outside Python's allocator, and hundreds of them alive together make the kernel
    # map fresh pages for almost every one, which costs more than the encoding itself.
    return orjson.dumps(columns) + b"\n" + b"\n".join(map(bytes, map(memoryview, map(orjson.dumps, features))))


def _encodable(row: tuple) -> bool:
    try:
        orjson.dumps(row)
    except TypeError:
        log.exception("prediction %s cannot be encoded for the log; dropped", row[0])
        return False
    return True


def decode_batch(payload: bytes, time_values: Callable[[Sequence], Sequence] | None = None) -> list[tuple]:
    """A batch's rows: tuples in ROW_COLUMNS order, features as the JSON text the log stores, and
    `created_at` as given (seconds since the epoch), or converted by `time_values`, which takes the
    rows' times together and returns them in the same order."""
    head_line, _, feature_lines = payload.partition(b"\n")
    columns = orjson.loads(head_line)
    if len(columns) != len(ROW_COLUMNS) - 1:
        raise ValueError(f"a batch's first line holds {len(ROW_COLUMNS) - 1} columns, not {len(columns)}")
    columns.insert(FEATURES, feature_lines.decode().split("\n") if feature_lines else [])
    if len(set(map(len, columns))) > 1:
        counts = ", ".join(f"{name} {len(column)}" for name, column in zip(ROW_COLUMNS, columns, strict=True))
        raise ValueError(f"a batch's columns hold different numbers of values: {counts}")
    if time_values is not None:
        columns[CREATED_AT] = time_values(columns[CREATED_AT])
    return list(zip(*columns, strict=True))


def with_shadow_scores(chunks: Sequence[Chunk], model: ShadowModel) -> list[Chunk]:
    """The chunks with the challenger's version and score beside each row's, all scored in one call
    (a call per one-row request would cost more than the trees)."""
    scores = iter(model.score_rows([row[FEATURES] for chunk in chunks for row in chunk.rows]))
    return [
        Chunk([(*row[:SHADOW_VERSION], model.version, float(next(scores)), *row[SHADOW_SCORE + 1 :]) for row in chunk.rows])
        for chunk in chunks
    ]  # fmt: skip
