"""Pure ML logic and decisions: no Dagster import anywhere below this package."""
