"""Shared fixtures: a throwaway RETRAIN_HOME, a real temporary Dagster instance, real MLflow."""

import os

import dagster as dg
import pytest
import sqlalchemy as sa

from retrain_platform.definitions import build_definitions
from retrain_platform.settings import Settings

POSTGRES_URL = os.environ.get("RETRAIN_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def make_settings(tmp_path, **overrides) -> Settings:
    """One dataset unless a test asks for more (test_side_by_side runs several)."""
    return Settings(home=tmp_path / "home", **{"datasets": overrides.get("dataset", "flights"), **overrides})


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str = "retrain", **ops_config):
    """Run a job of these definitions in-process, as the Materialize button would, without raising."""
    run_config = {"ops": {op: {"config": config} for op, config in ops_config.items()}}
    return defs.resolve_job_def(job_name).execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)


def pythonic_resources(defs: dg.Definitions) -> dict:
    """The resources sensors and schedules take by type, for contexts built outside the daemon."""
    return {key: value for key, value in defs.resources.items() if isinstance(value, dg.ConfigurableResource)}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def defs(settings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The real PostgreSQL server: skipped with a reason where there is none, mandatory in CI."""
    try:
        with sa.create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(sa.text("select 1"))
    except Exception as err:  # noqa: BLE001 - any failure to connect means "no server here"
        if os.environ.get("RETRAIN_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is mandatory here (RETRAIN_REQUIRE_POSTGRES=1) but {POSTGRES_URL} failed: {err}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {err}")
    return POSTGRES_URL


# Module scope, defined here: each test module that serves gets its own registry and MLflow server
# (a fixture imported from another test module can end up shared between the two).
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two quick flights models in a temp MLflow store: version 1 in production, 2 the challenger."""
    from .serving_fixtures import register_flight_models

    return register_flight_models(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def mlflow_server(models):
    from .serving_fixtures import MlflowServerThread

    server = MlflowServerThread(models.tracking_uri, models.artifact_root)
    yield server
    server.stop()
