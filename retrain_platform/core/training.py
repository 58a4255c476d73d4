"""Training: LightGBM with native categoricals, and a logistic-regression baseline to beat."""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retrain_platform.datasets.spec import DatasetSpec

from .metrics import best_f1_threshold, classification_metrics
from .predictor import FeatureEncoder, Predictor
from .split import Split


@dataclass(frozen=True)
class TrainParams:
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int | None = None  # None: 1% of the training rows, between 5 and 200
    # Smoothing for high-cardinality categoricals (105 destinations): without it the trees learn
    # route quirks of the training months that do not hold in the next ones.
    cat_smooth: float = 50.0
    min_data_per_group: int = 200
    lambda_l2: float = 10.0
    feature_fraction: float = 0.9
    max_rounds: int = 600
    early_stopping_rounds: int = 30
    num_threads: int = 2
    seed: int = 42

    def lightgbm(self, train_rows: int) -> dict:
        # A fixed leaf size that suits 200k flights would allow one split on 400 tumours.
        min_leaf = self.min_data_in_leaf or max(5, min(200, train_rows // 100))
        return {
            "objective": "binary",
            "metric": "auc",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": min_leaf,
            "feature_fraction": self.feature_fraction,
            "cat_smooth": self.cat_smooth,
            "min_data_per_group": min(self.min_data_per_group, min_leaf),
            "lambda_l2": self.lambda_l2,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "verbosity": -1,
        }


@dataclass
class TrainedModel:
    predictor: Predictor
    params: dict
    best_iteration: int
    validation_metrics: dict[str, float]
    holdout_metrics: dict[str, float]
    baseline_holdout_metrics: dict[str, float]
    rows: dict[str, int] = field(default_factory=dict)


def train_lightgbm(split: Split, spec: DatasetSpec, params: TrainParams) -> tuple[lgb.Booster, float]:
    encoder = FeatureEncoder(spec)

    def dataset(frame: pd.DataFrame, reference=None) -> lgb.Dataset:
        return lgb.Dataset(
            encoder.frame(frame), label=frame[spec.target].to_numpy(), feature_name=encoder.names,
            categorical_feature=encoder.categorical_indices, reference=reference, free_raw_data=True,
        )  # fmt: skip

    train_set = dataset(split.train)
    booster = lgb.train(
        params.lightgbm(len(split.train)),
        train_set,
        num_boost_round=params.max_rounds,
        valid_sets=[dataset(split.validation, reference=train_set)],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    # Keep only the trees that early stopping chose, so the saved model is the one we measured.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    validation_scores = booster.predict(encoder.frame(split.validation), num_threads=params.num_threads)
    return booster, best_f1_threshold(split.validation[spec.target], validation_scores)


def train_baseline(split: Split, spec: DatasetSpec):
    transformers = [("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), spec.numeric_features)]
    if spec.categorical_features:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore"), spec.categorical_features))
    model = make_pipeline(ColumnTransformer(transformers), LogisticRegression(max_iter=300))
    model.fit(split.train[spec.feature_names], split.train[spec.target])
    threshold = best_f1_threshold(split.validation[spec.target], model.predict_proba(split.validation[spec.feature_names])[:, 1])
    return model, threshold


def train_candidate(split: Split, spec: DatasetSpec, params: TrainParams | None = None) -> TrainedModel:
    params = params or TrainParams()
    booster, threshold = train_lightgbm(split, spec, params)
    predictor = Predictor(booster, spec, threshold)
    baseline, baseline_threshold = train_baseline(split, spec)
    baseline_scores = baseline.predict_proba(split.holdout[spec.feature_names])[:, 1]
    return TrainedModel(
        predictor=predictor,
        params={**params.lightgbm(len(split.train)), "max_rounds": params.max_rounds, "decision_threshold": threshold},
        best_iteration=booster.num_trees(),
        validation_metrics=classification_metrics(split.validation[spec.target], predictor.scores(split.validation), threshold),
        holdout_metrics=classification_metrics(split.holdout[spec.target], predictor.scores(split.holdout), threshold),
        baseline_holdout_metrics=classification_metrics(split.holdout[spec.target], baseline_scores, baseline_threshold),
        rows={"train": len(split.train), "validation": len(split.validation), "holdout": len(split.holdout)},
    )
