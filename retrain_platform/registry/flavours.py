"""How each model kind is logged to MLflow and read back as a native Predictor.

LightGBM goes through `mlflow.lightgbm` (the booster itself). The logistic model is a pyfunc whose
one artifact is the JSON of its arrays: `mlflow models serve` and `pyfunc.load_model` work on it,
while serving reads the JSON straight into a `LinearPredictor`, no wrapper on the request path.

Either kind carries the feature order and category codes it was trained with (`FeatureMapping`) in
its MLmodel file's metadata, and is read back with them, whatever the dataset's YAML says today.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model, infer_signature
from mlflow.pyfunc import PythonModel

from retrain_platform.core.linear import KIND as LOGISTIC
from retrain_platform.core.feature_mapping import FeatureMapping
from retrain_platform.core.linear import LinearPredictor
from retrain_platform.core.predictor import LightGBMPredictor, Predictor
from retrain_platform.datasets import DatasetSpec, get_spec

LIGHTGBM = "lightgbm"
KIND_TAG = "model_kind"  # absent on versions registered before there was a choice: LightGBM
LINEAR_ARTIFACT = "linear_model.json"
MAPPING_KEY = "feature_mapping"  # in the MLmodel metadata; absent on versions registered before it was kept


class LinearPyfunc(PythonModel):
    """The pyfunc face of a LinearPredictor: raw feature columns in, scores out."""

    def load_context(self, context):
        data = json.loads(Path(context.artifacts["linear_model"]).read_text())
        self.predictor = LinearPredictor.from_dict(data, get_spec(data["dataset"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predictor.scores(pd.DataFrame(model_input))


def _requirements(*extra: str) -> list[str]:
    # Named, not inferred: inference loads the model in a subprocess, seconds per version.
    return [*extra, f"mlflow=={mlflow.__version__}", f"pandas=={pd.__version__}", f"numpy=={np.__version__}"]


def log_predictor(predictor: Predictor, model_name: str, example_rows: pd.DataFrame):
    """Log in the active MLflow run and register under `model_name`; returns MLflow's ModelInfo.

    `example_rows` are a few raw rows; the logged example is what the logged model takes."""
    metadata = {"dataset": predictor.spec.name, "decision_threshold": predictor.threshold, KIND_TAG: predictor.kind,
                MAPPING_KEY: predictor.mapping.to_dict()}  # fmt: skip
    if isinstance(predictor, LightGBMPredictor):
        example = predictor.encoded(example_rows)
        return mlflow.lightgbm.log_model(
            predictor.booster, name="model", registered_model_name=model_name, input_example=example,
            signature=infer_signature(example, predictor.booster.predict(example.to_numpy())),
            pip_requirements=_requirements(f"lightgbm=={lgb.__version__}"), metadata=metadata,
        )  # fmt: skip
    if isinstance(predictor, LinearPredictor):
        example = example_rows[list(predictor.mapping.names)]  # the spec's own types: integers only where never null
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / LINEAR_ARTIFACT
            path.write_text(json.dumps(predictor.to_dict()))
            return mlflow.pyfunc.log_model(
                name="model", python_model=LinearPyfunc(), artifacts={"linear_model": str(path)},
                registered_model_name=model_name, input_example=example,
                signature=infer_signature(example, predictor.scores(example)),
                pip_requirements=_requirements(), metadata=metadata,
            )  # fmt: skip
    raise TypeError(f"no MLflow flavour for a {type(predictor).__name__}")


def stored_mapping(local: str) -> FeatureMapping | None:
    """The mapping logged with the model; None for a version registered before mappings were kept."""
    (path,) = Path(local).rglob("MLmodel")
    stored = (Model.load(path).metadata or {}).get(MAPPING_KEY)
    return FeatureMapping.from_dict(stored) if stored else None


def spec_mapping(booster: lgb.Booster, spec: DatasetSpec) -> FeatureMapping:
    """A LightGBM version registered before mappings were kept: the booster's own feature order,
    and the categories of the spec as it stands now, the only record of them. Right while no category
    was inserted before or reordered in a list since that version was trained."""
    categories = FeatureMapping.from_spec(spec).categories
    names = tuple(booster.feature_name())
    return FeatureMapping(names, {name: categories[name] for name in names if name in categories})


def read_predictor(local: str, kind: str, spec: DatasetSpec, threshold: float, version: str) -> Predictor:
    """The native predictor from a downloaded model folder, encoding with the version's own mapping."""
    mapping = stored_mapping(local)
    if kind == LIGHTGBM:
        booster = mlflow.lightgbm.load_model(local)
        mapping = mapping or spec_mapping(booster, spec)
        return LightGBMPredictor(booster, spec, threshold, version=version, mapping=mapping)
    if kind == LOGISTIC:
        (path,) = Path(local).rglob(LINEAR_ARTIFACT)
        # Without a stored mapping the model's own coefficient tables name its features and categories.
        predictor = LinearPredictor.from_dict(json.loads(path.read_text()), spec, version=version, mapping=mapping)
        predictor.threshold = threshold  # the version's tag is the truth, as for LightGBM
        return predictor
    raise ValueError(f"version {version}: unknown model kind {kind!r}")
