"""Training: candidates of several kinds compared on the validation rows, the best one refit on
train + validation so the newest labels before the holdout are learned too.

The holdout is never used to choose: it is the evaluation's, where the challenger meets the champion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec

from .linear import fit_logistic
from .live_comparison import delong_covariance
from .metrics import best_f1_threshold, classification_metrics
from .predictor import FeatureEncoder, LightGBMPredictor, Predictor
from .split import Split

LIGHTGBM, LOGISTIC = "lightgbm", "logistic"
KINDS = (LIGHTGBM, LOGISTIC)


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
    # The model kinds that compete on the validation rows, in order of preference on a tie.
    kinds: tuple[str, ...] = KINDS
    # Learn train + validation once the kind and its settings are chosen.
    refit: bool = True
    # Then also fit the same recipe on the holdout rows: the model that serves learns the newest
    # labels. The gates judge the recipe on the fit that never saw the holdout.
    learn_holdout: bool = False
    # Rows weigh 0.5 ** (age / half-life), age counted back from the newest training row; None:
    # every row weighs the same.
    recency_half_life_days: float | None = None
    logistic_c: float = 1.0
    # Another kind replaces the first listed only when its validation AUC is higher by at least
    # this many standard errors of the paired difference (DeLong); 0: any higher AUC.
    switch_z: float = 0.0

    def __post_init__(self):
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, not {self.kinds}")

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


@dataclass(frozen=True)
class Candidate:
    """One kind fitted on the training rows and measured on the validation rows."""

    kind: str
    predictor: Predictor
    validation_metrics: dict[str, float]
    validation_scores: np.ndarray = field(repr=False)
    rounds: int | None = None  # LightGBM: what early stopping found


@dataclass
class TrainedModel:
    predictor: Predictor  # the chosen kind, refit on train + validation unless params.refit is off
    params: dict
    candidates: list[Candidate]
    chosen: str
    reason: str
    validation_metrics: dict[str, float]  # the chosen kind before the refit: rows it had not seen
    holdout_metrics: dict[str, float]
    trees: int  # 0 for a linear model
    rows: dict[str, int] = field(default_factory=dict)
    # The same recipe fit on every row, the holdout too (params.learn_holdout); None: `predictor` serves.
    final: Predictor | None = None

    @property
    def served(self) -> Predictor:
        return self.final or self.predictor

    def candidates_table(self) -> dict[str, dict[str, float]]:
        """Validation figures per candidate, the chosen one marked: the asset's and the run's table."""
        return {(f"{c.kind} (chosen)" if c.kind == self.chosen else c.kind): c.validation_metrics for c in self.candidates}


def recency_weights(frame: pd.DataFrame, spec: DatasetSpec, half_life_days: float | None) -> np.ndarray | None:
    """Exponential decay by age, scaled to mean 1 so regularisation means what it meant unweighted."""
    if half_life_days is None or not spec.timestamp or frame.empty:
        return None
    times = pd.to_datetime(frame[spec.timestamp])
    age_days = ((times.max() - times).dt.total_seconds() / 86_400).to_numpy()
    weights = 0.5 ** (age_days / half_life_days)
    return weights / weights.mean()


def fit_lightgbm(train: pd.DataFrame, spec: DatasetSpec, params: TrainParams, rounds: int | None = None,
                 validation: pd.DataFrame | None = None) -> lgb.Booster:  # fmt: skip
    """Early stopping on `validation` when given, else exactly `rounds` rounds."""
    encoder = FeatureEncoder(spec)

    def dataset(frame: pd.DataFrame, reference=None, weight=None) -> lgb.Dataset:
        return lgb.Dataset(
            encoder.frame(frame), label=frame[spec.target].to_numpy(), weight=weight, feature_name=encoder.names,
            categorical_feature=encoder.categorical_indices, reference=reference, free_raw_data=True,
        )  # fmt: skip

    train_set = dataset(train, weight=recency_weights(train, spec, params.recency_half_life_days))
    if validation is None:
        return lgb.train(params.lightgbm(len(train)), train_set, num_boost_round=max(1, rounds or params.max_rounds))
    booster = lgb.train(
        params.lightgbm(len(train)),
        train_set,
        num_boost_round=params.max_rounds,
        valid_sets=[dataset(validation, reference=train_set)],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    # Keep only the trees that early stopping chose, so the saved model is the one we measured.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def _fit(kind: str, train: pd.DataFrame, spec: DatasetSpec, params: TrainParams, threshold: float = 0.5,
         rounds: int | None = None, validation: pd.DataFrame | None = None) -> Predictor:  # fmt: skip
    if kind == LIGHTGBM:
        return LightGBMPredictor(fit_lightgbm(train, spec, params, rounds, validation), spec, threshold)
    weights = recency_weights(train, spec, params.recency_half_life_days)
    return fit_logistic(train, spec, threshold, weights, params.logistic_c)


def fit_candidates(split: Split, spec: DatasetSpec, params: TrainParams) -> list[Candidate]:
    """Every kind fitted on train, its threshold and figures taken on validation."""
    candidates = []
    labels = split.validation[spec.target]
    for kind in params.kinds:
        predictor = _fit(kind, split.train, spec, params, validation=split.validation)
        scores = predictor.scores(split.validation)
        predictor.threshold = best_f1_threshold(labels, scores)
        rounds = predictor.booster.num_trees() if kind == LIGHTGBM else None
        metrics = classification_metrics(labels, scores, predictor.threshold)
        candidates.append(Candidate(kind, predictor, metrics, scores, rounds))
    return candidates


def choose(candidates: list[Candidate], labels, switch_z: float = 0.0) -> tuple[Candidate, str]:
    """The first kind listed, unless another has a higher validation AUC (what the promotion gate
    compares) by at least `switch_z` standard errors of the paired difference; then the highest such."""
    default, others = candidates[0], candidates[1:]
    auc = {c.kind: c.validation_metrics["auc"] for c in candidates}
    if not others:
        return default, f"the only kind trained; validation AUC {auc[default.kind]:.4f}"
    z = {c.kind: _paired_z(labels, default.validation_scores, c.validation_scores) for c in others}
    better = [c for c in others if auc[c.kind] > auc[default.kind] and z[c.kind] >= switch_z]
    best = max(better, key=lambda c: auc[c.kind]) if better else default
    if best is default:
        why = f"no other kind beat {default.kind} by z >= {switch_z:g}" if switch_z else "highest validation AUC"
    else:
        why = f"beat {default.kind} by z >= {switch_z:g}" if switch_z else "highest validation AUC"
    figures = ", ".join(f"{c.kind} {auc[c.kind]:.4f}" + (f" (z {z[c.kind]:+.2f})" if c is not default else "")
                        for c in sorted(candidates, key=lambda c: c is not best))  # fmt: skip
    return best, f"{why}: {figures}"


def _paired_z(labels, default_scores: np.ndarray, other_scores: np.ndarray) -> float:
    """(other AUC - default AUC) over the DeLong standard error of that difference on the same rows."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return 0.0
    aucs, covariance = delong_covariance(labels, np.vstack([default_scores, other_scores]))
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = aucs[1] - aucs[0]
    return float(difference / np.sqrt(variance)) if variance > 1e-15 else float(np.sign(difference) * np.inf)


def refit_rounds(found: int, train_rows: int, refit_rows: int) -> int:
    """Early stopping's rounds grown with the data: the same learning rate takes proportionally
    more rounds to fit proportionally more rows before it starts to overfit."""
    return max(1, round(found * refit_rows / max(train_rows, 1)))


def train_candidate(split: Split, spec: DatasetSpec, params: TrainParams | None = None) -> TrainedModel:
    params = params or TrainParams()
    candidates = fit_candidates(split, spec, params)
    best, reason = choose(candidates, split.validation[spec.target], params.switch_z)
    predictor, rounds = best.predictor, None
    learned = split.train
    if params.refit:
        learned = pd.concat([split.train, split.validation])
        if best.kind == LIGHTGBM:
            rounds = refit_rounds(best.rounds, len(split.train), len(learned))
        # The threshold stays the one picked on validation before the refit: rows the refit model
        # learned from would flatter any cut, and both fits are log-loss probabilities on one scale.
        predictor = _fit(best.kind, learned, spec, params, best.predictor.threshold, rounds=rounds)
    final = final_rounds = None
    if params.learn_holdout:
        everything = pd.concat([learned, split.holdout])
        if best.kind == LIGHTGBM:
            final_rounds = refit_rounds(best.rounds, len(split.train), len(everything))
        final = _fit(best.kind, everything, spec, params, predictor.threshold, rounds=final_rounds)
    lightgbm_params = params.lightgbm(len(learned)) if best.kind == LIGHTGBM else {}
    return TrainedModel(
        predictor=predictor,
        params={
            **lightgbm_params, "model_kind": best.kind, "candidate_kinds": ",".join(params.kinds),
            "refit": params.refit, "recency_half_life_days": params.recency_half_life_days,
            "max_rounds": params.max_rounds, "rounds_found": best.rounds, "rounds_refit": rounds,
            "logistic_c": params.logistic_c, "decision_threshold": predictor.threshold, "learned_rows": len(learned),
            "learn_holdout": params.learn_holdout, "rounds_final": final_rounds,
        },  # fmt: skip
        candidates=candidates,
        chosen=best.kind,
        reason=reason,
        validation_metrics=best.validation_metrics,
        holdout_metrics=classification_metrics(split.holdout[spec.target], predictor.scores(split.holdout), predictor.threshold),
        trees=predictor.booster.num_trees() if best.kind == LIGHTGBM else 0,
        rows={"train": len(split.train), "validation": len(split.validation), "holdout": len(split.holdout)},
        final=final,
    )
