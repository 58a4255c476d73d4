"""A DatasetFile written as YAML for people: one line per feature, long category lists wrapped,
comments saying what to review. Values are written as JSON, which YAML reads as written."""

from __future__ import annotations

import json
import math
import re

import yaml

from .spec_file import CategoryFeature, DatasetFile, NumberFeature

WIDTH = 100
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")


def scalar(value, bare: bool = True) -> str:
    """One value as YAML reads it back: a plain word bare, anything else as JSON."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be a bound in a spec")
        text = repr(value)
        # YAML 1.1 (PyYAML) reads 1e-05 as a string: its floats need a dot.
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if bare and isinstance(value, str) and PLAIN.fullmatch(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _flow_list(values: list, indent: int) -> str:
    """["a", "b", ...] wrapped, for a list that starts `indent` characters into its first line, so
    that no line runs past WIDTH."""
    if not values:
        return "[]"
    lines, line = [], " " * indent + "["
    for i, value in enumerate(values):
        item = scalar(value, bare=False) + ("," if i < len(values) - 1 else "]")
        if len(line) + len(item) > WIDTH and not line.endswith("["):
            lines.append(line.rstrip())
            line = " " * (indent + 1)
        line += item + " "
    lines.append(line.rstrip())
    return "\n".join(lines)[indent:]


def _feature(name: str, entry: NumberFeature | CategoryFeature) -> str:
    parts = [f"type: {entry.type}"]
    if isinstance(entry, NumberFeature):
        parts += [f"{bound}: {scalar(value)}" for bound, value in (("min", entry.min), ("max", entry.max))
                  if value is not None]  # fmt: skip
    if entry.nullable:
        parts.append("nullable: true")
    if entry.description:
        parts.append(f"description: {scalar(entry.description)}")
    key = f"  {scalar(name) if not name.isidentifier() else name}:"
    if isinstance(entry, CategoryFeature):
        body = "\n".join(f"    {part}" for part in parts)
        return f"{key}\n{body}\n    categories: {_flow_list(entry.categories, len('    categories: '))}"
    return f"{key} {{{', '.join(parts)}}}"


def _mapping(name: str, values: dict) -> list[str]:
    return [f"{name}:", *(f"  {key}: {scalar(value)}" for key, value in values.items() if value is not None)]


def to_yaml(spec_file: DatasetFile, comments: dict[str, str] | None = None) -> str:
    """The spec as YAML; `comments` go above the top-level key they are named after ("" : the top)."""
    comments = comments or {}
    data = spec_file.data.model_dump(exclude_defaults=True)
    if "columns" in data:
        data["columns"] = None  # written as a wrapped list below
    sections = {
        "name": [f"name: {spec_file.name}"],
        "description": [f"description: {scalar(spec_file.description)}"],
        "data": _mapping("data", data) + (
            [f"  columns: {_flow_list(spec_file.data.columns, len('  columns: '))}"] if spec_file.data.columns else []),
        "id": _mapping("id", spec_file.id.model_dump(exclude_defaults=True)),
        "time": [f"time: {scalar(spec_file.time)}"],
        "target": _mapping("target", spec_file.target.model_dump()),
        "auc_floor": [f"auc_floor: {scalar(spec_file.auc_floor)}"],
        "recall_floor": [f"recall_floor: {scalar(spec_file.recall_floor)}"],
        "min_rows": [f"min_rows: {spec_file.min_rows}"],
        "gates": _mapping("gates", spec_file.gates.model_dump(exclude_defaults=True)),
        "features": ["features:", *(_feature(name, entry) for name, entry in spec_file.features.items())],
    }  # fmt: skip
    if sections["gates"] == ["gates:"]:
        sections["gates"] = ["gates: {}"]
    lines = [f"# {line}" for line in comments.get("", "").splitlines()]
    for key, section in sections.items():
        lines += [f"# {line}" for line in comments.get(key, "").splitlines()] + section
    return "\n".join(lines) + "\n"
