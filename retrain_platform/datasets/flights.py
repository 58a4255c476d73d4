"""The shipped flights spec (specs/flights.yaml), by name for code that always means flights: the
replay, the benchmarks and tests. What it describes is in the YAML file."""

from __future__ import annotations

from .catalog import SHIPPED_FOLDER, load_spec

FLIGHTS = load_spec(SHIPPED_FOLDER / "flights.yaml")
