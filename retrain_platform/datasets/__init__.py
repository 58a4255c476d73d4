"""Dataset specs by name: every YAML file in the datasets folder (RETRAIN_DATASETS_DIR, default the
shipped `specs/`) is one; see docs/datasets.md."""

from __future__ import annotations

from .catalog import SpecCatalog, load_spec
from .flights import FLIGHTS
from .spec import Categorical, DatasetSpec, Numeric
from .yaml_lines import SpecError

SPECS = SpecCatalog()
get_spec = SPECS.get_spec

__all__ = ["FLIGHTS", "SPECS", "Categorical", "DatasetSpec", "Numeric", "SpecError", "get_spec", "load_spec"]
