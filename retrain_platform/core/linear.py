"""The logistic model as plain arrays: one-hot categories, scaled numbers, one dot product.

No scikit-learn at inference and nothing pickled: the model is a JSON document of numbers that a
loop of a few additions scores in microseconds, and numpy scores in bulk with the same operations
in the same order, so one row and many rows agree to the last bits before the sigmoid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from retrain_platform.datasets.spec import Categorical, DatasetSpec

from .feature_mapping import FeatureMapping
from .predictor import Contributions

KIND = "logistic"


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass
class LinearPredictor:
    """log-odds = intercept + sum over numbers of (x - mean) * weight + sum over categories of their
    coefficient. A missing number counts as the training median; a missing or unknown category
    adds nothing (the reference level). `weight` is the coefficient over the training spread, so
    the scaling is folded in."""

    spec: DatasetSpec
    threshold: float
    intercept: float
    # name -> (median, mean, weight)
    numeric: dict[str, tuple[float, float, float]]
    # name -> {category: coefficient}
    categorical: dict[str, dict[str, float]]
    # name -> how much the log-odds move across the training rows: |coefficient| x spread, summed
    spread_importance: dict[str, float] = field(default_factory=dict)
    version: str | None = None
    kind: str = KIND
    # The features it was trained on, in order. Its categories are coefficients keyed by value, so
    # codes never reach it; None: read from its own tables (a version registered before mappings
    # were stored: same features and categories, numbers listed first).
    mapping: FeatureMapping | None = None

    def __post_init__(self):
        self.mapping = self.mapping or FeatureMapping(
            (*self.numeric, *self.categorical), {name: tuple(table) for name, table in self.categorical.items()})
        # Tuples for the request path: a tuple walk is the cheapest loop Python has.
        self._numeric_terms = tuple((name, *terms) for name, terms in self.numeric.items())
        self._categorical_terms = tuple(self.categorical.items())

    def _terms(self, frame: pd.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
        """Each feature's term of the log-odds, in the order `score_one` adds them."""
        for name, median, mean, weight in self._numeric_terms:
            x = _numbers(frame[name])
            yield name, (np.where(np.isnan(x), median, x) - mean) * weight
        for name, coefficients in self._categorical_terms:
            yield name, frame[name].map(coefficients).astype(np.float64).fillna(0.0).to_numpy()

    def log_odds(self, frame: pd.DataFrame) -> np.ndarray:
        z = np.full(len(frame), self.intercept, dtype=np.float64)
        for _, term in self._terms(frame):
            z += term
        return z

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds(frame)))

    def score_rows(self, rows: list[dict]) -> np.ndarray:
        return self.scores(self._frame(rows))

    def _frame(self, rows: list[dict]) -> pd.DataFrame:
        return pd.DataFrame.from_records(rows, columns=list(self.mapping.names))

    def score_one(self, row: dict) -> float:
        z = self.intercept
        for name, median, mean, weight in self._numeric_terms:
            value = row.get(name)
            if value is None or value != value:  # None or NaN
                value = median
            z += (value - mean) * weight
        for name, coefficients in self._categorical_terms:
            z += coefficients.get(row.get(name), 0.0)
        return 1.0 / (1.0 + math.exp(-z))

    def importance(self) -> dict[str, float]:
        """|coefficient| x the feature's spread on the training rows (standard deviation of the
        number, of each category's 0/1 column), summed per original feature: how far the log-odds
        move across the data because of that feature, on the same footing for every feature."""
        return dict(self.spread_importance)

    def contributions(self, frame: pd.DataFrame) -> Contributions:
        """Coefficient x standardised value per number (the training median for a missing one), so
        relative to the training mean; a category's own coefficient, relative to the reference level
        (a missing or unknown category adds nothing). `bias` is the intercept. No interactions: these
        are the log-odds terms themselves, and exact Shapley values of a linear model with
        independent features."""
        columns = dict(self._terms(frame))
        features = pd.DataFrame({name: columns[name] for name in self.mapping.names}, index=frame.index)
        return Contributions(features, np.full(len(frame), self.intercept, dtype=np.float64))

    def contribution_rows(self, rows: list[dict]) -> Contributions:
        return self.contributions(self._frame(rows))

    # -- as data --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "kind": KIND, "dataset": self.spec.name, "threshold": self.threshold, "intercept": self.intercept,
            "numeric": {name: list(terms) for name, terms in self.numeric.items()},
            "categorical": self.categorical, "importance": self.spread_importance,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict, spec: DatasetSpec, version: str | None = None,
                  mapping: FeatureMapping | None = None) -> LinearPredictor:  # fmt: skip
        return cls(
            spec=spec, threshold=float(data["threshold"]), intercept=float(data["intercept"]),
            numeric={name: tuple(float(v) for v in terms) for name, terms in data["numeric"].items()},
            categorical={name: {k: float(v) for k, v in table.items()} for name, table in data["categorical"].items()},
            spread_importance={k: float(v) for k, v in data.get("importance", {}).items()}, version=version,
            mapping=mapping,
        )  # fmt: skip


def fit_logistic(frame: pd.DataFrame, spec: DatasetSpec, threshold: float = 0.5, weights: np.ndarray | None = None,
                 c: float = 1.0) -> LinearPredictor:  # fmt: skip
    """L2-regularised logistic regression on standardised numbers (median-imputed) and one column
    per category of the spec's list; the fitted coefficients become a LinearPredictor."""
    columns, blocks, spreads = [], [], []
    stats = {}
    for name in spec.numeric_features:
        x = _numbers(frame[name])
        median = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
        x = np.where(np.isnan(x), median, x)
        mean, scale = float(x.mean()), float(x.std()) or 1.0
        stats[name] = (median, mean, scale)
        blocks.append(sparse.csr_matrix(((x - mean) / scale)[:, None]))
        columns.append((name, None))
        spreads.append(1.0)  # a standardised column has unit spread
    rows = np.arange(len(frame))
    for feature in spec.features:
        if not isinstance(feature, Categorical):
            continue
        codes = pd.Categorical(frame[feature.name], categories=list(feature.categories)).codes
        known = codes >= 0  # a value outside the spec's list has no column, as at inference
        onehot = sparse.csr_matrix((np.ones(known.sum()), (rows[known], codes[known])),
                                   shape=(len(frame), len(feature.categories)))  # fmt: skip
        blocks.append(onehot)
        columns += [(feature.name, category) for category in feature.categories]
        share = np.bincount(codes[known], minlength=len(feature.categories)) / max(len(frame), 1)
        spreads += list(np.sqrt(share * (1 - share)))  # standard deviation of a 0/1 column
    design = sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((len(frame), 0))
    model = LogisticRegression(C=c, max_iter=1_000)
    model.fit(design, frame[spec.target].to_numpy(), sample_weight=weights)
    numeric, categorical, importance = {}, {}, {name: 0.0 for name in spec.feature_names}
    for (name, category), coefficient, spread in zip(columns, model.coef_[0], spreads, strict=True):
        importance[name] += abs(float(coefficient)) * float(spread)
        if category is None:
            median, mean, scale = stats[name]
            numeric[name] = (median, mean, float(coefficient) / scale)
        else:
            categorical.setdefault(name, {})[category] = float(coefficient)
    return LinearPredictor(spec, threshold, float(model.intercept_[0]), numeric, categorical, importance,
                           mapping=FeatureMapping.from_spec(spec))  # fmt: skip
