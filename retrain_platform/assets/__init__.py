"""Thin Dagster assets, one module per stage; the logic lives in retrain_platform.core."""
