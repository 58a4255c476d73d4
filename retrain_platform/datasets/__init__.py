"""Dataset specs by name. Adding a dataset means adding a spec module and a line here."""

from __future__ import annotations

from .breast_cancer import BREAST_CANCER
from .flights import FLIGHTS
from .spec import Categorical, DatasetSpec, Numeric

SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FLIGHTS, BREAST_CANCER)}


def get_spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(SPECS)}") from None


__all__ = ["SPECS", "Categorical", "DatasetSpec", "Numeric", "get_spec"]
