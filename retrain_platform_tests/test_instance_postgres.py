"""The deployment instance (deploy/dagster.yaml) on the real PostgreSQL server: runs, checks and tags land there."""

import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from .conftest import run_job

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def postgres_database(postgres_url):
    """A fresh database per test, dropped afterwards."""
    name = f"retrain_dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(postgres_url), name
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_deployment_instance_stores_runs_in_postgres(postgres_database, defs, tmp_path, monkeypatch):
    url, database = postgres_database
    for key, value in {"USER": url.username, "PASSWORD": url.password or "", "HOST": url.host, "DB": database}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    shutil.copy(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = run_job(defs, instance, raw_data={"window_days": 30, "window_end": "2013-02-28"},
                         candidate_model={"max_rounds": 20}, evaluation_report={"cooldown_days": 0})  # fmt: skip
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored.is_success and stored.tags["retrain_platform/promotion"] == "exclusive"
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("validated_features"), "schema_valid")]
        )
        assert check[dg.AssetCheckKey(dg.AssetKey("validated_features"), "schema_valid")].run_id == result.run_id
        assert instance.get_latest_materialization_event(dg.AssetKey("production_model")) is not None
    finally:
        instance.dispose()
