"""Predictions as the request path hands them to the log's writer: a chunk of rows, encoded once.

A chunk is one line of JSON with every column but the features, each column a list with a value
per row (a column left out is null), then one line of JSON per row's features. orjson never writes
a newline, so chunks joined by newlines split back exactly, wherever they are stored.

Encoding a request's predictions this way costs it little (C calls, no Python per row) and leaves
the writer thread, which shares the interpreter with the requests, nothing to do but pass the bytes
on. Each row's features arrive as the JSON text the log stores, so the process that stores them
(the insert process, when there is one) never parses and writes them again: what it does runs on
the core that a 1,000-row request's scoring also uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from .schema import PREDICTION_COLUMNS, features_mapping

COLUMNS = [*PREDICTION_COLUMNS, "features"]


class ShadowModel(Protocol):
    """The challenger that scores the same rows off the request path."""

    version: str

    def score_rows(self, rows: list[dict]) -> Sequence[float]: ...


def encode_chunk(columns: dict[str, list]) -> bytes:
    """Rows given column by column: the `predictions` columns, equal lengths, features as dicts."""
    head = orjson.dumps({name: values for name, values in columns.items() if name != "features"})
    return b"\n".join([head, *map(orjson.dumps, columns["features"])])


def encode_rows(rows: Sequence[dict]) -> bytes:
    """Rows given as dicts with the `predictions` columns (other keys are ignored), features as a
    dict or its JSON text."""
    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    columns["features"] = list(map(features_mapping, columns["features"]))
    return encode_chunk(columns)


def decode_chunks(payload: bytes) -> dict[str, list]:
    """Chunks joined by newlines, as one set of columns: features as the JSON text the log stores,
    times as ISO 8601 text, which the store's time type takes as it is."""
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    lines = payload.split(b"\n")
    start = 0
    while start < len(lines):
        head = orjson.loads(lines[start])
        count = len(head["prediction_id"])
        features = lines[start + 1 : start + 1 + count]
        if len(features) != count:
            raise ValueError(f"{len(features)} feature lines for {count} predictions")
        for name in PREDICTION_COLUMNS:
            values, given = columns[name], head.get(name)
            if given is not None and len(given) != count:
                raise ValueError(f"column {name!r} holds {len(given)} values for {count} predictions")
            values += [None] * count if given is None else given
        columns["features"] += map(bytes.decode, features)
        start += 1 + count
    return columns


def with_shadow_scores(chunks: list[bytes], model: ShadowModel) -> list[bytes]:
    """The chunks with the challenger's version and score beside each row's, all scored in one call
    (a call per one-row request would cost more than the trees)."""
    split = [chunk.split(b"\n") for chunk in chunks]
    scores = iter(model.score_rows([orjson.loads(line) for _, *features in split for line in features]))
    shadowed = []
    for head, *features in split:
        columns = orjson.loads(head)
        columns["shadow_version"] = [model.version] * len(features)
        columns["shadow_score"] = [float(next(scores)) for _ in features]
        shadowed.append(b"\n".join([orjson.dumps(columns), *features]))
    return shadowed
