"""What a model version was trained on: its features in order and, per categorical feature, the
categories whose positions are the codes it learned.

Taken from the spec when a model is fitted and stored with every registered version, so a version
is always fed with its own mapping: editing a dataset's YAML (a new carrier, features reordered)
never changes what a registered model receives. A category the version never knew is missing to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from retrain_platform.datasets.spec import Categorical, DatasetSpec


class UnservableVersion(RuntimeError):
    """The dataset's spec no longer offers what a registered version needs."""


@dataclass(frozen=True)
class FeatureMapping:
    names: tuple[str, ...]
    # categorical feature -> its categories; a category's code is its position here
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: DatasetSpec) -> FeatureMapping:
        return cls(tuple(spec.feature_names),
                   {f.name: tuple(f.categories) for f in spec.features if isinstance(f, Categorical)})  # fmt: skip

    def codes(self) -> dict[str, dict[str, float]]:
        return {name: {value: float(i) for i, value in enumerate(values)} for name, values in self.categories.items()}

    def to_dict(self) -> dict:
        categories = {name: list(values) for name, values in self.categories.items()}
        return {"features": list(self.names), "categories": categories}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureMapping:
        return cls(tuple(data["features"]), {name: tuple(values) for name, values in data["categories"].items()})

    def problems(self, spec: DatasetSpec) -> list[str]:
        """Why the spec cannot feed this mapping: features gone, or no longer of the same kind.
        Added features and categories are fine: the version ignores them, or sees them as missing."""
        offered = {f.name: isinstance(f, Categorical) for f in spec.features}
        gone = [name for name in self.names if name not in offered]
        changed = [f"{name} (was {'category' if name in self.categories else 'number'})"
                   for name in self.names if name in offered and offered[name] != (name in self.categories)]  # fmt: skip
        problems = [f"features it was trained on are gone from the spec: {', '.join(gone)}"] if gone else []
        return problems + ([f"features that changed type: {', '.join(changed)}"] if changed else [])

    def check_servable(self, spec: DatasetSpec, version: str) -> None:
        """Raise, naming the version (`version`: "<model> version <n>"), the dataset and the
        features, when the spec cannot feed it."""
        problems = self.problems(spec)
        if problems:
            raise UnservableVersion(
                f"{version} cannot be served with dataset {spec.name!r} as its spec now stands: "
                f"{'; '.join(problems)}. Restore them in the dataset's YAML, "
                "or promote a version trained without them."
            )
