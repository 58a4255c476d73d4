"""The one declarative description of a tabular dataset.

Everything dataset-specific is derived from a `DatasetSpec`: the Pandera schema, the model's
numeric and categorical features, the serving request model and the drift column types. A new
dataset is a new YAML file in the datasets folder (catalog.py), not new code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from retrain_platform.core.gates import GateConfig


@dataclass(frozen=True)
class Numeric:
    name: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    integer: bool = False
    description: str = ""


@dataclass(frozen=True)
class Categorical:
    name: str
    categories: tuple[str, ...]
    nullable: bool = False
    description: str = ""


Feature = Numeric | Categorical


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    features: tuple[Feature, ...]
    target: str
    id_column: str
    # None for a dataset with no time axis: it is then split in row order and has no window.
    timestamp: str | None
    load: Callable[[], pd.DataFrame] = field(repr=False, compare=False)
    # Absolute floors that decide when there is no champion yet; per dataset, since a good AUC
    # for flight delays is a poor one for a tumour classifier.
    auc_floor: float = 0.5
    recall_floor: float = 0.0
    min_rows: int = 1_000
    gates: GateConfig = field(default_factory=GateConfig)  # this dataset's promotion gate settings
    learns_from_log: bool = False  # its retrains also learn its labelled prediction log (YAML data.prediction_log)

    @property
    def model_name(self) -> str:
        return f"retrain-{self.name}"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if isinstance(f, Numeric)]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if isinstance(f, Categorical)]

    @property
    def columns(self) -> list[str]:
        """Every column a batch of this dataset carries, in a stable order."""
        time = [self.timestamp] if self.timestamp else []
        return [self.id_column, *time, *self.feature_names, self.target]

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)
