"""Predictions as the request path hands them to the log's writer: a chunk of rows, encoded once.

A chunk is one request's predictions: rows that share a model version, a time and a latency. It
is one line of JSON, its head, then one line of JSON per row's features. The head holds
`prediction_id`, `score` and `predicted_label` (and, once the challenger scored them,
`shadow_score`) as lists with a value per row, and `model_version`, `created_at` and `latency_ms`
(and `shadow_version`) as one value for the whole chunk. `created_at` is seconds since the epoch
(serving's: the cheapest to take and to write), an aware datetime or its ISO 8601 text. orjson
never writes a newline, so chunks joined by newlines split back exactly, wherever they are stored.

Encoding a request's predictions this way costs it two C calls and no Python per row, and leaves
the writer thread, which shares the interpreter with the requests, nothing to do but pass the bytes
on. Each row's features arrive as the JSON text the log stores, so the process that stores them
(the insert process, when there is one) never parses and writes them again, and its Python per row
is one tuple: what it does runs on the cores that the requests also use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Protocol

import orjson

from .schema import features_mapping

# The rows `decode_chunks` gives: values in this order, as the inserter's statement names them.
ROW_COLUMNS = ("prediction_id", "created_at", "model_version", "features", "score", "predicted_label",
               "shadow_version", "shadow_score", "latency_ms")  # fmt: skip
PER_ROW = ("prediction_id", "score", "predicted_label", "shadow_score")


class ShadowModel(Protocol):
    """The challenger that scores the same rows off the request path."""

    version: str

    def score_rows(self, rows: list[dict]) -> Sequence[float]: ...


def encode_chunk(head: dict, features: Iterable[dict]) -> bytes:
    """`head` as above, `features` a dict per row, in the order of the head's lists."""
    return b"\n".join([orjson.dumps(head), *map(orjson.dumps, features)])


def encode_rows(rows: Sequence[dict]) -> bytes:
    """Rows given as dicts with the `predictions` columns (other keys are ignored), features as a
    dict or its JSON text: a chunk each, since each may have its own time and version."""
    return b"\n".join(
        encode_chunk({name: [row.get(name)] if name in PER_ROW else row.get(name) for name in ROW_COLUMNS
                      if name != "features"}, [features_mapping(row["features"])])  # fmt: skip
        for row in rows
    )


def _short_column(head: dict, count: int) -> ValueError:
    name = next(name for name in PER_ROW if head.get(name) is not None and len(head[name]) != count)
    return ValueError(f"column {name!r} holds {len(head[name])} values for {count} predictions")


def decode_chunks(payload: bytes, time_value: Callable | None = None, pause: Callable[[], None] | None = None,
                  pause_every: int = 100) -> list[tuple]:  # fmt: skip
    """Chunks joined by newlines, as rows: tuples in ROW_COLUMNS order, features as the JSON text
    the log stores, and each chunk's `created_at` as given (which the store's time type takes), or
    converted by `time_value`, once per chunk.

    `pause`, when given, runs every `pause_every` rows or so (a writer thread lets requests in)."""
    rows: list[tuple] = []
    lines = payload.split(b"\n")
    start = since_pause = 0
    while start < len(lines):
        head = orjson.loads(lines[start])
        ids = head["prediction_id"]
        count = len(ids)
        features = lines[start + 1 : start + 1 + count]
        if len(features) != count:
            raise ValueError(f"{len(features)} feature lines for {count} predictions")
        scores, labels, shadow_scores = head["score"], head["predicted_label"], head.get("shadow_score")
        if len(scores) != count or len(labels) != count or shadow_scores is not None and len(shadow_scores) != count:
            raise _short_column(head, count)
        if shadow_scores is None:
            shadow_scores = repeat(None, count)
        # Tuples made by zip, in C: the values a chunk's rows share are repeated, not copied.
        created_at = head["created_at"] if time_value is None else time_value(head["created_at"])
        rows += zip(ids, repeat(created_at), repeat(head["model_version"]),
                    map(bytes.decode, features), scores, labels, repeat(head.get("shadow_version")), shadow_scores,
                    repeat(head.get("latency_ms")))  # fmt: skip
        start += 1 + count
        since_pause += count
        if pause is not None and since_pause >= pause_every:
            pause()
            since_pause = 0
    return rows


def with_shadow_scores(chunks: list[bytes], model: ShadowModel) -> list[bytes]:
    """The chunks with the challenger's version and score beside each row's, all scored in one call
    (a call per one-row request would cost more than the trees)."""
    split = [chunk.split(b"\n") for chunk in chunks]
    scores = iter(model.score_rows([orjson.loads(line) for _, *features in split for line in features]))
    shadowed = []
    for head_line, *features in split:
        head = orjson.loads(head_line)
        head["shadow_version"] = model.version
        head["shadow_score"] = [float(next(scores)) for _ in features]
        shadowed.append(b"\n".join([orjson.dumps(head), *features]))
    return shadowed
