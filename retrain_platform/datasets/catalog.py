"""The datasets folder: every `*.yaml` in it is a dataset, found by being there.

The folder is `RETRAIN_DATASETS_DIR`, or the specs shipped with the platform. It is read on first
use and again when the setting changes, so importing the platform never reads data files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from .reading import dataset_rows
from .spec import Categorical, DatasetSpec, Numeric
from .spec_file import CategoryFeature, DatasetFile
from .yaml_lines import LinedYaml, SpecError

SHIPPED_FOLDER = Path(__file__).parent / "specs"
FOLDER_VARIABLE = "RETRAIN_DATASETS_DIR"  # Settings.datasets_dir


def datasets_folder() -> Path:
    """Read from the environment, not from a Settings object: serving, Dagster's processes and the
    registry's model loader all ask for specs by name and share only the environment."""
    return Path(os.environ.get(FOLDER_VARIABLE) or SHIPPED_FOLDER).expanduser()


def _hint(error: dict) -> str:
    if error["type"] == "string_type" and isinstance(error.get("input"), bool):
        return " (YAML reads yes, no, on, off, true and false as booleans: quote it)"
    return ""


def _first_per_field(problems: list[str]) -> list[str]:
    """One problem per field: a value that fits no member of a union fails each member in turn."""
    seen, kept = set(), []
    for problem in problems:
        where = problem.split(": ", 2)[:2]
        if tuple(where) not in seen:
            seen.add(tuple(where))
            kept.append(problem)
    return kept


def read_spec_file(path: Path) -> DatasetFile:
    """The file validated; every problem at once, each with its line."""
    document = LinedYaml(path)
    try:
        spec_file = DatasetFile.model_validate(document.data)
    except ValidationError as err:
        problems = [document.error(e["loc"], e["msg"] + _hint(e), missing=e["type"] == "missing")
                    for e in err.errors(include_url=False)]  # fmt: skip
        raise SpecError("\n".join(_first_per_field(problems))) from None
    if spec_file.name != path.stem:
        raise SpecError(document.error(("name",), f"{spec_file.name!r} must be the file's name ({path.stem!r})"))
    if spec_file.data.path is not None and not spec_file.data.files(path.parent):
        raise SpecError(document.error(("data", "path"), f"no data file matches {spec_file.data.path!r}"))
    return spec_file


def to_spec(spec_file: DatasetFile, folder: Path) -> DatasetSpec:
    features = tuple(
        Categorical(name, tuple(entry.categories), entry.nullable, entry.description)
        if isinstance(entry, CategoryFeature)
        else Numeric(name, entry.min, entry.max, entry.nullable, entry.type == "integer", entry.description)
        for name, entry in spec_file.features.items()
    )
    return DatasetSpec(
        name=spec_file.name,
        description=spec_file.description,
        features=features,
        target=spec_file.target.column,
        id_column=spec_file.id.column,
        timestamp=spec_file.time,
        load=partial(dataset_rows, spec_file, folder),
        auc_floor=spec_file.auc_floor,
        recall_floor=spec_file.recall_floor,
        min_rows=spec_file.min_rows,
        gates=spec_file.gates,
        learns_from_log=spec_file.data.prediction_log,
    )


def load_spec(path: Path) -> DatasetSpec:
    return to_spec(read_spec_file(path), path.parent)


def load_folder(folder: Path) -> dict[str, DatasetSpec]:
    """Every dataset of the folder by name; a bad file is an error, not a dataset that goes missing."""
    if not folder.is_dir():
        raise SpecError(f"{folder}: the datasets folder ({FOLDER_VARIABLE}) is not a folder")
    specs = [load_spec(path) for path in sorted(folder.glob("*.yaml"))]
    return {spec.name: spec for spec in specs}


class SpecCatalog(Mapping[str, DatasetSpec]):
    """The datasets of the current datasets folder, by name."""

    def __init__(self):
        self._folder: Path | None = None
        self._specs: dict[str, DatasetSpec] = {}

    def _current(self) -> dict[str, DatasetSpec]:
        folder = datasets_folder()
        if folder != self._folder:
            self._specs, self._folder = load_folder(folder), folder
        return self._specs

    def __getitem__(self, name: str) -> DatasetSpec:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def get_spec(self, name: str) -> DatasetSpec:
        specs = self._current()
        if name not in specs:
            raise KeyError(f"unknown dataset {name!r}; known: {sorted(specs)} (in {self._folder})")
        return specs[name]
