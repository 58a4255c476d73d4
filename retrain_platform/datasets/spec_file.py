"""The shape of a dataset's YAML file, validated at load: a typo, a wrong type or an unknown key is
an error naming the file, the line and the field, never something ignored until a run fails."""

from __future__ import annotations

import glob
import importlib.util
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationInfo,
                      field_validator, model_validator)

from retrain_platform.core.gates import GateConfig



def _a_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {value!r}")
    return value


Number = Annotated[int | float, BeforeValidator(_a_number)]  # YAML's 0 stays an int: a spec reads as written
ColumnName = Annotated[StrictStr, Field(min_length=1)]


class _Entry(BaseModel):
    # Strict: YAML already types its values, so "5" for a number is a mistake, not a number.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NumberFeature(_Entry):
    type: Literal["number", "integer"]
    min: Number | None = None
    max: Number | None = None
    nullable: StrictBool = False
    description: StrictStr = ""

    @model_validator(mode="after")
    def _ordered(self) -> NumberFeature:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class CategoryFeature(_Entry):
    type: Literal["category"]
    # Listed order is kept: it is the order the model's category codes follow.
    categories: Annotated[list[StrictStr], Field(min_length=1)]
    nullable: StrictBool = False
    description: StrictStr = ""

    @model_validator(mode="after")
    def _distinct(self) -> CategoryFeature:
        repeated = sorted({c for c in self.categories if self.categories.count(c) > 1})
        if repeated:
            raise ValueError(f"categories listed twice: {repeated}")
        return self


FeatureEntry = Annotated[NumberFeature | CategoryFeature, Field(discriminator="type")]


class DataSource(_Entry):
    """Where the rows are: a file or a glob of files (Parquet or CSV), a Python function, and/or the
    dataset's own labelled prediction log."""

    package: StrictStr | None = None  # an installed Python package whose folder `path` is in
    path: StrictStr | None = None  # relative to the spec's folder (or `package`'s), or absolute; may be a glob
    python: StrictStr | None = None  # "module:function" returning a DataFrame, for custom loading
    format: Literal["parquet", "csv"] | None = None  # default: from the file name
    header: StrictBool = True  # CSV: the first line names the columns
    columns: list[ColumnName] | None = None  # CSV: the column names, replacing the header line if any
    separator: Annotated[StrictStr, Field(min_length=1, max_length=1)] = ","
    # The dataset's labelled prediction log is a source too: its retrains learn the rows it served
    # and got labels for, beside the file's (RETRAIN_TRAIN_ON_PREDICTION_LOG does so for every dataset).
    prediction_log: StrictBool = False

    @model_validator(mode="after")
    def _one_origin(self) -> DataSource:
        if self.path is not None and self.python is not None or (self.path is None and self.python is None
                                                                  and not self.prediction_log):  # fmt: skip
            raise ValueError("give either `path` (a file or a glob) or `python` (module:function), "
                             "or `prediction_log: true` alone for a dataset whose rows are its labelled predictions")
        if self.package and not self.path:
            raise ValueError("`package` says where `path` is; give `path` too")
        if self.python and self.python.count(":") != 1:
            raise ValueError(f"`python` is module:function, not {self.python!r}")
        return self

    def files(self, folder: Path) -> list[Path]:
        """The data files, sorted; [] when nothing matches."""
        base = package_folder(self.package) if self.package else folder
        pattern = base / Path(self.path).expanduser()
        return sorted(Path(match) for match in glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else (
            [pattern] if pattern.is_file() else [])  # fmt: skip

    def file_format(self, file: Path) -> str:
        if self.format:
            return self.format
        suffixes = [s for s in file.suffixes if s not in (".gz", ".bz2", ".xz", ".zip", ".zst")]
        return "parquet" if suffixes and suffixes[-1] in (".parquet", ".pq") else "csv"


def package_folder(package: str) -> Path:
    """The folder of an installed package, found without importing it (sklearn takes a second)."""
    top, *rest = package.split(".")
    found = importlib.util.find_spec(top)
    if found is None or not found.submodule_search_locations:
        raise ValueError(f"no installed Python package {top!r}")
    return Path(next(iter(found.submodule_search_locations))).joinpath(*rest)


class IdColumn(_Entry):
    column: ColumnName
    generate: StrictBool = False  # the data has no id: number the rows in file order, from 0


class Target(_Entry):
    column: ColumnName
    positive: StrictStr | StrictInt | StrictBool  # the value that becomes label 1; every other value is 0


class DatasetFile(_Entry):
    name: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
    description: StrictStr = ""
    data: DataSource
    id: IdColumn
    time: ColumnName | None = None  # the event time; none: rows are split in file order
    target: Target
    features: Annotated[dict[ColumnName, FeatureEntry], Field(min_length=1)]
    # When there is no champion yet, these decide; a good AUC for one problem is a poor one for another.
    auc_floor: Annotated[Number, Field(ge=0, le=1)] = 0.5
    recall_floor: Annotated[Number, Field(ge=0, le=1)] = 0.0
    min_rows: Annotated[StrictInt, Field(ge=1)] = 1_000
    gates: GateConfig = GateConfig()

    @field_validator("features")
    @classmethod
    def _not_another_role(cls, features: dict, info: ValidationInfo) -> dict:
        roles = {"id": info.data.get("id"), "time": info.data.get("time"), "target": info.data.get("target")}
        for role, entry in roles.items():
            column = getattr(entry, "column", entry)
            if column in features:
                raise ValueError(f"{column!r} is the {role} column and a feature: it can only be one")
        return features

    @model_validator(mode="after")
    def _distinct_roles(self) -> DatasetFile:
        roles = [c for c in (self.id.column, self.time, self.target.column) if c]
        if len(set(roles)) < len(roles):
            raise ValueError(f"the id, time and target columns must differ: {roles}")
        return self
