"""What serving scores with: the `Predictor` contract, and its native LightGBM implementation
(the logistic one is `core.linear.LinearPredictor`). One encoding for training and inference, no
pyfunc wrapper.

Categorical values become their index in the version's own category list (`FeatureMapping`, taken
from the spec at training and stored with the version), so a spec edited later never changes the
codes a registered model receives; a value outside the list (or missing) becomes NaN, which
LightGBM sends down the branch it learned for unseen categories.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import lightgbm as lgb
import numpy as np
import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec

from .feature_mapping import FeatureMapping

log = logging.getLogger(__name__)


class FeatureEncoder:
    """Raw feature values to the model's numbers, in the mapping's feature order. A spec is read as
    the mapping it gives today: what training uses for a model it is about to fit."""

    def __init__(self, features: FeatureMapping | DatasetSpec):
        mapping = features if isinstance(features, FeatureMapping) else FeatureMapping.from_spec(features)
        self.names = list(mapping.names)
        self.codes = mapping.codes()
        self.categorical_indices = [i for i, name in enumerate(self.names) if name in self.codes]
        # (position, name, codes or None) per feature: the one-row loop reads a tuple, no lookups.
        self._plan = tuple((c, name, self.codes.get(name)) for c, name in enumerate(self.names))

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
        """Encode rows given as dicts (the request path), column by column."""
        out = np.empty((len(rows), len(self.names)), dtype=np.float64)
        for c, name, codes in self._plan:
            if codes is None:
                out[:, c] = [row.get(name) for row in rows]  # None becomes NaN
            else:
                out[:, c] = [codes.get(row.get(name), np.nan) for row in rows]
        return out

    def row(self, row: dict, out: np.ndarray) -> np.ndarray:
        """Encode one row into `out`: the single-prediction path, where numpy calls cost more than the loop."""
        for c, name, codes in self._plan:
            value = row.get(name)
            if codes is not None:
                value = codes.get(value)
            out[c] = np.nan if value is None else value
        return out


# One thread for a few rows: starting a thread pool costs more than the trees. Many rows are
# spread over every core.
PARALLEL_FROM = 256


def _threads(rows: int) -> int:
    return 1 if rows < PARALLEL_FROM else 0  # 0: LightGBM's default, every core


class SingleRowScorer:
    """LightGBM's single-row fast path (`LGBM_BoosterPredictForMatSingleRowFast`): the prediction
    configuration is parsed once, not on every call as `Booster.predict` does, which for one row
    costs more than the trees themselves. Same trees, same iterations, same result.

    The platform's only use of private LightGBM API (`lightgbm.basic._LIB`, `_c_str`, `_safe_call`,
    `Booster._handle`), kept because the public `Booster.predict` costs two to three times as much
    per row (benchmarks/one_row_predict.py). If an upgrade breaks it, `test_core` fails naming the
    LightGBM version, and `LightGBMPredictor` scores through `Booster.predict` meanwhile."""

    NORMAL, FLOAT64 = 0, 1  # C_API_PREDICT_NORMAL, C_API_DTYPE_FLOAT64

    def __init__(self, booster: lgb.Booster, columns: int):
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._lib, self._check = _LIB, _safe_call
        self._row = np.empty(columns, dtype=np.float64)
        self._result = np.empty(1, dtype=np.float64)
        self._length = ctypes.c_int64(0)
        self._handle = ctypes.c_void_p()
        self._lock = threading.Lock()  # one row buffer and one LightGBM config: one caller at a time
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(self.NORMAL), ctypes.c_int(0), ctypes.c_int(booster.best_iteration),
            ctypes.c_int(self.FLOAT64), ctypes.c_int32(columns), _c_str("num_threads=1"),
            ctypes.byref(self._handle)))  # fmt: skip
        # The booster must outlive the configuration that points into it.
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self._handle)
        self._booster = booster

    def score(self, encode) -> float:
        """`encode(buffer)` fills the row buffer; the score comes back as a float."""
        with self._lock:
            encode(self._row)
            self._check(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle, self._row.ctypes.data_as(ctypes.c_void_p), ctypes.byref(self._length),
                self._result.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))  # fmt: skip
            return float(self._result[0])


class PublicRowScorer:
    """One row through the public `Booster.predict`: what serves if the fast path cannot be built."""

    def __init__(self, booster: lgb.Booster, columns: int):
        self._booster, self._columns = booster, columns

    def score(self, encode) -> float:
        row = np.empty((1, self._columns), dtype=np.float64)  # a buffer per call: nothing shared
        encode(row[0])
        return float(self._booster.predict(row, num_threads=1)[0])


def one_row_scorer(booster: lgb.Booster, columns: int) -> SingleRowScorer | PublicRowScorer:
    try:
        return SingleRowScorer(booster, columns)
    except Exception as error:  # a LightGBM whose private API moved: slower, still right
        log.warning("LightGBM %s: one-row fast path unavailable (%r); scoring with Booster.predict",
                    lgb.__version__, error)  # fmt: skip
        return PublicRowScorer(booster, columns)


@dataclass(frozen=True)
class Contributions:
    """Each feature's part in each row's log-odds: `features` (a row per row scored, a column per
    feature) plus `bias` add up to the model's raw score, before the sigmoid."""

    features: pd.DataFrame
    bias: np.ndarray

    def log_odds(self) -> np.ndarray:
        return self.features.to_numpy().sum(axis=1) + self.bias


@runtime_checkable
class Predictor(Protocol):
    """A served model of any kind: gates, serving and monitoring use only this."""

    spec: DatasetSpec  # the dataset as its spec stands now: its name, target, request fields
    mapping: FeatureMapping  # what this model was trained on: the features and codes it receives
    threshold: float
    version: str | None
    kind: str  # "lightgbm" or "logistic": how the registry logs and loads it

    def scores(self, frame: pd.DataFrame) -> np.ndarray: ...

    def score_rows(self, rows: list[dict]) -> np.ndarray: ...

    def score_one(self, row: dict) -> float:
        """One row on the request path: microseconds, not milliseconds."""
        ...

    def importance(self) -> dict[str, float]:
        """How much the model leans on each feature (any scale: callers use shares)."""
        ...

    def contributions(self, frame: pd.DataFrame) -> Contributions:
        """Why each row scored what it did: each feature's part in its log-odds."""
        ...

    def contribution_rows(self, rows: list[dict]) -> Contributions:
        """`contributions` of rows given as dicts (the request path)."""
        ...


@dataclass
class LightGBMPredictor:
    booster: lgb.Booster
    spec: DatasetSpec
    threshold: float
    version: str | None = None
    kind: str = "lightgbm"
    mapping: FeatureMapping | None = None  # None: a model fitted just now, on the spec as it stands

    def __post_init__(self):
        self.mapping = self.mapping or FeatureMapping.from_spec(self.spec)
        self.encoder = FeatureEncoder(self.mapping)
        self._single: SingleRowScorer | PublicRowScorer | None = None  # made on first use; a C handle does not pickle

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_single": None}

    def encoded(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What the native booster itself takes: numbers only, categories as the version's codes."""
        return pd.DataFrame(self.encoder.frame(frame), columns=self.encoder.names)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.score_encoded(self.encoder.frame(frame))

    def score_rows(self, rows: list[dict]) -> np.ndarray:
        return self.score_encoded(self.encoder.rows(rows))

    def score_encoded(self, encoded: np.ndarray) -> np.ndarray:
        """Rows as the encoder gives them: a column per feature, in the version's order."""
        return self.booster.predict(encoded, num_threads=_threads(len(encoded)))

    def score_one(self, row: dict) -> float:
        if self._single is None:
            self._single = one_row_scorer(self.booster, len(self.encoder.names))
        return self._single.score(lambda buffer: self.encoder.row(row, buffer))

    def importance(self) -> dict[str, float]:
        """Total split gain per feature: how much the model leans on each column."""
        gains = self.booster.feature_importance(importance_type="gain")  # up to the best iteration
        return dict(zip(self.encoder.names, (float(g) for g in gains), strict=True))

    def contributions(self, frame: pd.DataFrame) -> Contributions:
        """LightGBM's own tree SHAP values (`pred_contrib`): exact Shapley values of the trees'
        raw score; `bias` is the trees' expected raw score over the training rows."""
        return self._contributions(self.encoder.frame(frame), frame.index)

    def contribution_rows(self, rows: list[dict]) -> Contributions:
        return self._contributions(self.encoder.rows(rows))

    def _contributions(self, encoded: np.ndarray, index=None) -> Contributions:
        values = self.booster.predict(encoded, pred_contrib=True, num_threads=_threads(len(encoded)))
        return Contributions(pd.DataFrame(values[:, :-1], columns=self.encoder.names, index=index), values[:, -1])


def one_row_latency_ms(predictor: Predictor, frame: pd.DataFrame, repeats: int = 200) -> float:
    """Median wall time of scoring one row on the request path, in milliseconds."""
    rows = frame[list(predictor.mapping.names)].head(repeats).to_dict("records")
    timings = []
    for i in range(repeats):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        predictor.score_one(row)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings) * 1000)


def is_deterministic(predictor: Predictor, frame: pd.DataFrame) -> bool:
    """Two scorings of the same rows, in bulk and row by row, must agree exactly-ish."""
    sample = frame.head(500)
    bulk = predictor.scores(sample)
    again = predictor.scores(sample)
    rows = sample[list(predictor.mapping.names)].to_dict("records")
    by_rows = predictor.score_rows(rows)
    one_by_one = np.array([predictor.score_one(row) for row in rows])
    return bool(np.array_equal(bulk, again) and np.allclose(bulk, by_rows, rtol=0, atol=1e-12)
                and np.allclose(bulk, one_by_one, rtol=0, atol=1e-12))  # fmt: skip
