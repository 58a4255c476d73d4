"""Reading a YAML dataset's rows: the files (or the Python function), then the id, the 0/1 label
and the event time made the way the rest of the platform expects them."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd

from .spec_file import CategoryFeature, DatasetFile, DataSource


def read_source(source: DataSource, folder: Path) -> pd.DataFrame:
    """The data as stored, every column of it."""
    if source.python:
        module, function = source.python.split(":")
        return getattr(importlib.import_module(module), function)()
    files = source.files(folder)
    if not files:
        raise FileNotFoundError(f"no data file matches {source.path!r} (in {folder})")
    frames = [_read_file(source, file) for file in files]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _read_file(source: DataSource, file: Path) -> pd.DataFrame:
    if source.file_format(file) == "parquet":
        return pd.read_parquet(file)
    if source.columns is not None:
        header = 0 if source.header else None  # a header line that is there is replaced by `columns`
        return pd.read_csv(file, sep=source.separator, header=header, names=source.columns)
    if not source.header:
        frame = pd.read_csv(file, sep=source.separator, header=None)
        return frame.set_axis([f"column_{i}" for i in range(frame.shape[1])], axis=1)
    return pd.read_csv(file, sep=source.separator)


def dataset_rows(spec_file: DatasetFile, folder: Path) -> pd.DataFrame:
    """The rows as a batch of the dataset: the id, the event time, the features and a 0/1 target,
    in that order and nothing else (columns the spec does not name stay out)."""
    time = [spec_file.time] if spec_file.time else []
    if spec_file.data.path is None and spec_file.data.python is None:  # its prediction log is all it has
        return pd.DataFrame(columns=[spec_file.id.column, *time, *spec_file.features, spec_file.target.column])
    frame = read_source(spec_file.data, folder)
    name = spec_file.name
    target, positive = spec_file.target.column, spec_file.target.positive
    needed = [c for c in (target, spec_file.time, *spec_file.features) if c]
    if not spec_file.id.generate:
        needed.insert(0, spec_file.id.column)
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise KeyError(f"dataset {name!r}: the data has no column {absent}; it has {list(frame.columns)}")
    # A row with no outcome cannot teach anything: it is left out, not counted as a negative.
    frame = frame[frame[target].notna()].reset_index(drop=True)
    labels = frame[target] == positive
    if not labels.any():
        seen = sorted(map(str, frame[target].unique()[:10]))
        raise ValueError(f"dataset {name!r}: no row has the positive value {positive!r} in column {target!r}; "
                         f"values seen: {seen}")  # fmt: skip
    columns = {target: labels.astype("int64")}
    if spec_file.id.generate:
        columns[spec_file.id.column] = np.arange(len(frame), dtype="int64")
    if spec_file.time and not pd.api.types.is_datetime64_any_dtype(frame[spec_file.time]):
        columns[spec_file.time] = pd.to_datetime(frame[spec_file.time])
    for feature, entry in spec_file.features.items():
        if isinstance(entry, CategoryFeature) and pd.api.types.infer_dtype(frame[feature], skipna=True) != "string":
            columns[feature] = as_text(frame[feature])
    frame = frame.assign(**columns)
    return frame[[spec_file.id.column, *time, *spec_file.features, target]]


def _text(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def as_text(codes: pd.Series) -> pd.Series:
    """Category codes the file stored as numbers (in one file of a glob, say), as the strings a
    spec lists: 3, not 3.0."""
    return codes.map(_text, na_action="ignore").astype(object)
