"""Predictions as the request path hands them to the log's writer (chunks), and as the writer hands
them to whatever stores them (batches).

A chunk is one request's predictions: rows that share a model version, a time and a latency,
encoded once, on the request path, in two pieces. Its head is a JSON array of HEAD's fields, the
per-row ones (PER_ROW) as lists with a value per row; its features are each row's features as a
line of JSON. `created_at` is seconds since the epoch (serving's: the cheapest to take and to
write), an aware datetime or its ISO 8601 text. A batch, what is stored in one transaction, is the
heads of its chunks as one JSON array on its first line, then the features of every row, a line
each, in the same order (`join_chunks`). orjson never writes a newline, so the lines split back
exactly.

Why this shape: encoding a request costs it two C calls and no Python per row, and the writer
thread, which shares the interpreter with the requests, only joins bytes. The process that stores
a batch (the insert process, when there is one) parses all its heads in one call, never parses the
features (they arrive as the JSON text the log stores), and spreads each chunk's shared values
over its rows with C iterators: no Python per row, and none per chunk beyond its time's conversion,
whether a batch holds 500 one-row requests or one request of 1,000 rows. Its work runs on the cores
that the requests also use: each microsecond per row there costs throughput.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate, chain, repeat
from typing import NamedTuple, Protocol

import orjson

from .schema import features_mapping

# A head's fields, in order; a head is a JSON array (no keys to write and parse for each request).
HEAD = ("prediction_id", "created_at", "model_version", "score", "predicted_label", "latency_ms",
        "shadow_version", "shadow_score")  # fmt: skip
PER_ROW = ("prediction_id", "score", "predicted_label", "shadow_score")  # lists, a value per row
IDS, SHADOW_VERSION, SHADOW_SCORE = (HEAD.index(name) for name in ("prediction_id", "shadow_version", "shadow_score"))
# The rows `decode_batch` gives: values in this order, as the inserter's statement names them.
ROW_COLUMNS = ("prediction_id", "created_at", "model_version", "features", "score", "predicted_label",
               "shadow_version", "shadow_score", "latency_ms")  # fmt: skip


class ShadowModel(Protocol):
    """The challenger that scores the same rows off the request path."""

    version: str

    def score_rows(self, rows: list[dict]) -> Sequence[float]: ...


class Chunk(NamedTuple):  # a tuple: made once per request
    """Encoded predictions as queued for the writer: one or more heads, comma-separated (the inside
    of a JSON array), their rows' features, a line each, and the challenger to shadow them with."""

    head: bytes
    features: bytes
    rows: int
    shadow: ShadowModel | None = None


def encode_chunk(features: Sequence[dict], *, ids: list[str], scores: list[float], labels: list[int],
                 model_version: str, created_at, latency_ms: float | None = None,
                 shadow_version: str | None = None, shadow_scores: list[float] | None = None,
                 shadow: ShadowModel | None = None) -> Chunk:  # fmt: skip
    """One request's predictions: `features`, `ids`, `scores` and `labels` a value per row."""
    head = orjson.dumps((ids, created_at, model_version, scores, labels, latency_ms, shadow_version, shadow_scores))
    lines = orjson.dumps(features[0]) if len(features) == 1 else b"\n".join(map(orjson.dumps, features))
    return Chunk(head, lines, len(features), shadow)


def encode_rows(rows: Sequence[dict]) -> Chunk:
    """Rows given as dicts with the `predictions` columns (other keys are ignored), features as a
    dict or its JSON text: a head each, since each may have its own time and version."""
    chunks = [
        encode_chunk([features_mapping(row["features"])], ids=[row["prediction_id"]], scores=[row["score"]],
                     labels=[row["predicted_label"]], model_version=row["model_version"],
                     created_at=row["created_at"], latency_ms=row.get("latency_ms"),
                     shadow_version=row.get("shadow_version"),
                     shadow_scores=None if row.get("shadow_score") is None else [row["shadow_score"]])
        for row in rows
    ]  # fmt: skip
    return Chunk(b",".join(c.head for c in chunks), b"\n".join(c.features for c in chunks), len(chunks))


def join_chunks(chunks: Sequence[Chunk]) -> bytes:
    """The batch that stores `chunks` (see above)."""
    return b"".join([b"[", b",".join([c.head for c in chunks]), b"]\n", b"\n".join([c.features for c in chunks])])


def decode_batch(payload: bytes, time_values: Callable[[Sequence], Sequence] | None = None,
                 pause: Callable[[], None] | None = None, pause_every: int = 100) -> list[tuple]:  # fmt: skip
    """A batch's rows: tuples in ROW_COLUMNS order, features as the JSON text the log stores, and
    each chunk's `created_at` as given (which the store's time type takes), or converted by
    `time_values`, which takes the chunks' times together and returns them in the same order.

    `pause`, when given, runs between slices of about `pause_every` rows (a writer thread lets
    requests in)."""
    head_line, _, feature_lines = payload.partition(b"\n")
    heads = orjson.loads(head_line)
    if not heads:
        return []
    if any(len(head) != len(HEAD) for head in heads):
        raise ValueError(f"a head holds {len(HEAD)} fields ({', '.join(HEAD)})")
    columns = list(zip(*heads, strict=True))
    ids, shadow_scores = columns[IDS], columns[SHADOW_SCORE]
    counts = list(map(len, ids))
    features = feature_lines.decode().split("\n") if feature_lines else []
    if len(features) != sum(counts):
        raise ValueError(f"{len(features)} feature lines for {sum(counts)} predictions")
    columns[SHADOW_SCORE] = [[None] * n if values is None else values for values, n in zip(shadow_scores, counts, strict=True)]
    for name in PER_ROW:
        if name == "prediction_id":  # the ids give the counts
            continue
        if (lengths := list(map(len, columns[HEAD.index(name)]))) != counts:
            chunk = next(i for i, (length, count) in enumerate(zip(lengths, counts, strict=True)) if length != count)
            raise ValueError(f"chunk {chunk}: column {name!r} holds {lengths[chunk]} values for {counts[chunk]} "
                             "predictions")  # fmt: skip
    if pause is None:
        return _rows(columns, counts, features, time_values)
    ends = list(accumulate(counts))  # each chunk's rows end here
    rows, first = [], 0
    while first < len(counts):
        start = ends[first] - counts[first]
        last = max(bisect_right(ends, start + pause_every), first + 1)  # whole chunks, at least one
        rows += _rows([column[first:last] for column in columns], counts[first:last], features[start : ends[last - 1]],
                      time_values)  # fmt: skip
        first = last
        if first < len(counts):
            pause()
    return rows


def _rows(columns: list[Sequence], counts: list[int], features: list[str], time_values) -> list[tuple]:
    """Chunks' rows from their heads' columns: no Python per row."""
    ids, times, versions, scores, labels, latencies, shadow_versions, shadow_scores = columns

    def spread(values):  # a value per chunk, repeated for each of its rows
        return chain.from_iterable(map(repeat, values, counts))

    flat = chain.from_iterable
    if time_values is not None:
        times = time_values(times)
    return list(zip(flat(ids), spread(times), spread(versions), features, flat(scores), flat(labels),
                    spread(shadow_versions), flat(shadow_scores), spread(latencies), strict=True))  # fmt: skip


def with_shadow_scores(chunks: Sequence[Chunk], model: ShadowModel) -> list[Chunk]:
    """The chunks with the challenger's version and score beside each row's, all scored in one call
    (a call per one-row request would cost more than the trees)."""
    split = [chunk.features.split(b"\n") for chunk in chunks]
    scores = iter(model.score_rows([orjson.loads(line) for lines in split for line in lines]))
    shadowed = []
    for chunk in chunks:
        heads = orjson.loads(b"[" + chunk.head + b"]")
        for head in heads:
            head[SHADOW_VERSION] = model.version
            head[SHADOW_SCORE] = [float(next(scores)) for _ in head[IDS]]
        shadowed.append(Chunk(orjson.dumps(heads)[1:-1], chunk.features, chunk.rows))
    return shadowed
