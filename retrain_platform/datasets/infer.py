"""A draft dataset spec from the data itself (`retrain-platform spec infer`): each column's type,
its observed range widened a little, its categories and whether it has nulls. A draft to review:
the data says what was seen, not what is possible."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .reading import as_text, read_source
from .spec_file import DatasetFile, DataSource
from .spec_yaml import to_yaml

# More distinct texts than this is a name or a free text, not a category, unless they repeat a lot
# (104 airports over 300,000 flights are categories).
FEW_CATEGORIES, MAX_CATEGORIES, MAX_DISTINCT_SHARE = 50, 1_000, 0.05
WIDEN = 0.1  # of the observed span, on each side


class InferError(ValueError):
    """The data cannot become a spec as asked: a column is missing, the positive value unclear."""


def _outward(value: float, step: float, up: bool) -> float:
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(f"{rounded:.12g}")  # 0.30000000000000004 is 0.3


def widened_range(values: pd.Series, integer: bool) -> tuple[float | int, float | int]:
    """The observed range plus WIDEN of its span each side, rounded outward to a plain step; a
    variable that never went below zero does not start to."""
    low, high = float(values.min()), float(values.max())
    margin = (high - low) * WIDEN or abs(high) * WIDEN or 1.0
    step = 10 ** math.floor(math.log10(margin))
    new_low = _outward(low - margin, step, up=False)
    new_high = _outward(high + margin, step, up=True)
    if low >= 0 > new_low:
        new_low = 0.0
    if integer:
        return math.floor(new_low), math.ceil(new_high)
    return (int(new_low) if new_low.is_integer() else new_low), (int(new_high) if new_high.is_integer() else new_high)


def _feature(column: pd.Series) -> tuple[dict | None, str]:
    """The entry for one column, or None and why it is left out."""
    nullable = bool(column.isna().any())
    present = column.dropna()
    if present.empty:
        return None, "always empty"
    if pd.api.types.is_datetime64_any_dtype(column):
        return None, "a date-time: make it a number (hour, weekday, ...) or name it the event time"
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        categories = sorted(as_text(present).unique())
        many = len(categories) > MAX_CATEGORIES or len(categories) > MAX_DISTINCT_SHARE * len(present)
        if len(categories) > FEW_CATEGORIES and many:
            return None, f"{len(categories):,} distinct texts: an identifier or free text, not a category"
        return {"type": "category", "categories": categories, "nullable": nullable}, ""
    integer = pd.api.types.is_integer_dtype(column)
    low, high = widened_range(present, integer)
    return {"type": "integer" if integer else "number", "min": low, "max": high, "nullable": nullable}, ""


def _matches(value, given: str) -> bool:
    if isinstance(value, bool):
        return given.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(given) == value
        except ValueError:
            return False
    return str(value) == given


def _positive(target: pd.Series, given: str | None) -> str | int | bool:
    """The positive value as the column holds it; 1 (or true) when the column is 0/1."""
    values = target.dropna().unique().tolist()
    seen = sorted(map(str, values))[:10]
    if given is None:
        if set(values) == {0, 1}:
            return True if pd.api.types.is_bool_dtype(target) else 1
        raise InferError(f"which value of {target.name!r} is the positive one? Give --positive; values seen: {seen}")
    found = [value for value in values if _matches(value, given)]
    if not found:
        raise InferError(f"--positive {given!r} is not a value of {target.name!r}; values seen: {seen}")
    value = found[0]
    if isinstance(value, float):  # 0/1 read as floats, because of nulls
        if not value.is_integer():
            raise InferError(f"a positive value must be a text, a whole number or a boolean, not {value}")
        return int(value)
    return value


def infer_spec(source: DataSource, folder: Path, name: str, target: str, positive: str | None = None,
               time: str | None = None, id_column: str | None = None) -> tuple[DatasetFile, dict[str, str]]:  # fmt: skip
    """The draft spec, and the columns left out with why."""
    frame = read_source(source, folder)
    for role, column in (("target", target), ("time", time)):
        if column and column not in frame.columns:
            raise InferError(f"no {role} column {column!r}; the data has {list(frame.columns)}")
    generate_id = id_column is None or id_column not in frame.columns
    id_column = id_column or next(c for c in ("row_id", f"{name}_id", "_row_id") if c not in frame.columns)
    features, left_out = {}, {}
    for column in frame.columns:
        if column in (target, time, id_column):
            continue
        entry, why = _feature(frame[column])
        if entry is None:
            left_out[column] = why
        else:
            features[column] = entry
    draft = DatasetFile.model_validate({
        "name": name,
        "description": f"{name}: drafted from {source.path or source.python}; say what a row is and what the target means",
        "data": source.model_dump(exclude_defaults=True),
        "id": {"column": id_column, "generate": generate_id},
        "time": time,
        "target": {"column": target, "positive": _positive(frame[target], positive)},
        "features": features,
        "min_rows": max(1, min(1_000, len(frame) // 2)),
    })  # fmt: skip
    return draft, left_out


def draft_yaml(draft: DatasetFile, left_out: dict[str, str]) -> str:
    left = "\n".join(f"  {column}: {why}" for column, why in left_out.items())
    return to_yaml(draft, {
        "": f"Draft from `retrain-platform spec infer`: review it, then save it as {draft.name}.yaml in the\n"
            "datasets folder (RETRAIN_DATASETS_DIR). Ranges are what the data showed, widened a little; the\n"
            "serving API refuses anything outside them, so widen them to what is possible." +
            (f"\nLeft out:\n{left}" if left else ""),
        "data": "A relative path is read from the spec file's folder (or from `package`'s).",
        "auc_floor": "While there is no production model, a candidate must reach these floors.",
        "gates": "Promotion gate settings (see GateConfig in core/gates.py); empty: the defaults.",
        "features": "Categories keep their listed order: it is the order of the codes the model receives.",
    })  # fmt: skip


def draft_from_file(data: str, name: str, target: str, positive: str | None = None, time: str | None = None,
                    id_column: str | None = None, package: str | None = None, header: bool = True) -> str:  # fmt: skip
    """`spec infer`'s answer: the draft YAML for a data file (a path, or a path in an installed package)."""
    path = data if package else str(Path(data).expanduser().resolve())
    source = DataSource(package=package, path=path, header=header)
    draft, left_out = infer_spec(source, Path.cwd(), name, target, positive, time, id_column)
    return draft_yaml(draft, left_out)
