"""The native LightGBM predictor: one encoding for training and inference, no pyfunc wrapper.

Categorical values become their index in the spec's category list, so codes are stable across
data windows and model versions; a value outside the list (or missing) becomes NaN, which LightGBM
sends down the branch it learned for unseen categories.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from retrain_platform.datasets.spec import Categorical, DatasetSpec


class FeatureEncoder:
    def __init__(self, spec: DatasetSpec):
        self.spec = spec
        self.names = spec.feature_names
        self.codes = {
            f.name: {value: float(i) for i, value in enumerate(f.categories)}
            for f in spec.features
            if isinstance(f, Categorical)
        }
        self.categorical_indices = [i for i, name in enumerate(self.names) if name in self.codes]

    def frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode many rows at once, vectorised per column."""
        columns = []
        for name in self.names:
            values = frame[name]
            if name in self.codes:
                values = values.map(self.codes[name])
            columns.append(pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))

    def rows(self, rows: list[dict]) -> np.ndarray:
        """Encode a few rows given as dicts: the request path, where a DataFrame costs more than it saves."""
        out = np.empty((len(rows), len(self.names)), dtype=np.float64)
        for r, row in enumerate(rows):
            for c, name in enumerate(self.names):
                value = row.get(name)
                codes = self.codes.get(name)
                if codes is not None:
                    value = codes.get(value)
                out[r, c] = np.nan if value is None else value
        return out


# One thread for a few rows: starting a thread pool costs more than the trees. Many rows are
# spread over every core.
PARALLEL_FROM = 256


def _threads(rows: int) -> int:
    return 1 if rows < PARALLEL_FROM else 0  # 0: LightGBM's default, every core


@dataclass
class Predictor:
    booster: lgb.Booster
    spec: DatasetSpec
    threshold: float
    version: str | None = None

    def __post_init__(self):
        self.encoder = FeatureEncoder(self.spec)

    def encoded(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What the native booster itself takes: numbers only, categories as spec codes."""
        return pd.DataFrame(self.encoder.frame(frame), columns=self.encoder.names)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        encoded = self.encoder.frame(frame)
        return self.booster.predict(encoded, num_threads=_threads(len(encoded)))

    def score_rows(self, rows: list[dict]) -> np.ndarray:
        encoded = self.encoder.rows(rows)
        return self.booster.predict(encoded, num_threads=_threads(len(encoded)))


def one_row_latency_ms(predictor: Predictor, frame: pd.DataFrame, repeats: int = 200) -> float:
    """Median wall time of scoring one row on the request path, in milliseconds."""
    rows = frame[predictor.spec.feature_names].head(repeats).to_dict("records")
    timings = []
    for i in range(repeats):
        row = [rows[i % len(rows)]]
        start = time.perf_counter()
        predictor.score_rows(row)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings) * 1000)


def is_deterministic(predictor: Predictor, frame: pd.DataFrame) -> bool:
    """Two scorings of the same rows, in bulk and row by row, must agree exactly-ish."""
    sample = frame.head(500)
    bulk = predictor.scores(sample)
    again = predictor.scores(sample)
    by_row = predictor.score_rows(sample[predictor.spec.feature_names].to_dict("records"))
    return bool(np.array_equal(bulk, again) and np.allclose(bulk, by_row, rtol=0, atol=1e-12))
