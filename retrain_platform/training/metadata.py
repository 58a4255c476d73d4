"""Metadata helpers shared by the assets: column schemas and markdown tables for the UI."""

import dagster as dg

from retrain_platform.core.training import TrainedModel
from retrain_platform.datasets.spec import Categorical, DatasetSpec


def column_schema(spec: DatasetSpec) -> dg.TableSchema:
    """The spec as the catalog's Columns tab shows it."""
    columns = [dg.TableColumn(spec.id_column, "int", description="row id")]
    if spec.timestamp:
        columns.append(dg.TableColumn(spec.timestamp, "datetime", description="event time"))
    for f in spec.features:
        kind = "category" if isinstance(f, Categorical) else ("int" if getattr(f, "integer", False) else "float")
        columns.append(dg.TableColumn(f.name, kind, description=f.description))
    columns.append(dg.TableColumn(spec.target, "int", description="label (0/1)"))
    return dg.TableSchema(columns)


def metrics_table(columns: dict[str, dict[str, float] | None]) -> str:
    """One markdown table: a row per metric, a column per model."""
    named = {name: m for name, m in columns.items() if m}
    metrics = [k for k in next(iter(named.values()))] if named else []
    lines = ["| metric | " + " | ".join(named) + " |", "|---|" + "---|" * len(named)]
    for metric in metrics:
        lines.append(f"| {metric} | " + " | ".join(f"{m.get(metric, float('nan')):.4f}" for m in named.values()) + " |")
    return "\n".join(lines)


def candidates_markdown(trained: TrainedModel) -> str:
    """Every candidate's figures on the validation rows, and which one was chosen and why."""
    refit = trained.params.get("learned_rows")
    learned = f", then refit on {refit:,} train + validation rows" if trained.params.get("refit") else ""
    return (f"{metrics_table(trained.candidates_table())}\n\n"
            f"Chosen: **{trained.chosen}**, {trained.reason}{learned}.")  # fmt: skip
