"""Schema-driven fuzzing of serving's OpenAPI spec with Schemathesis, over real HTTP.

A real uvicorn server serves a real registered model (temporary MLflow store) and logs to a real
SQLite prediction store; every request carries the real admin token, so the admin endpoints run
their handlers rather than stopping at 401. Dagster is a port that refuses connections.

For every operation Schemathesis sends the spec's examples and then valid and invalid generated
requests (bounded: 25 per operation, no deadline). What is allowed:

- any 2xx/4xx the operation documents (schema check `status_code_conformance`), with a body that
  matches the documented schema and media type (`response_schema_conformance`,
  `content_type_conformance`);
- no 5xx, except a documented 503 for a documented reason: Dagster unreachable (`/retrain`,
  `/retrain/status/{run_id}`, which is always the case here) or no model loaded yet (prediction
  and model endpoints; it does not happen here, a model is loaded before the first request).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from retrain_platform.settings import Settings
from retrain_platform_tests.serving_fixtures import UvicornThread, free_port, register_flight_models
from serving.app import create_app
from serving.auth import ADMIN_TOKEN_ENV

TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BATCH_ROWS = 50  # small, so that generated batches can cross the limit (a documented 413)

# The only 5xx answers allowed: status 503 whose detail starts with the documented reason.
DOCUMENTED_503 = {
    "Dagster unreachable": "Dagster at ",
    "no model loaded yet": "no model is loaded yet",
}

CONFIG = schemathesis.Config.from_dict({
    "generation": {"max-examples": 25, "database": "none"},
    # The real admin token for the spec's bearer scheme, so the admin handlers themselves run.
    "auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}},
    # Stateful runs are a different kind of test; the coverage phase's boundary cases are many
    # per field (the flights row has 20), which would blow the time budget on 2 cores.
    "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    "request-timeout": 30,
})  # fmt: skip


def serving_settings(home: Path, **where: str) -> Settings:
    return Settings(home=home, serving_poll_seconds=30, serving_max_batch_rows=MAX_BATCH_ROWS, store_flush_seconds=0.2,
                    **where)  # fmt: skip


# Loaded when the module is collected, from an app built with the same serving settings as the
# one under test (the document depends on those and on the dataset spec, not on where things are);
# the fixture checks that the running server publishes exactly this document.
schema = schemathesis.openapi.from_dict(create_app(serving_settings(Path("/nonexistent"))).openapi(), config=CONFIG)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = register_flight_models(tmp_path_factory.mktemp("mlflow"), count=1, rows_per_model=5_000)
    home = tmp_path_factory.mktemp("serving")
    settings = serving_settings(
        home,
        mlflow_tracking_uri=models.tracking_uri,
        prediction_store_url=f"sqlite:///{home / 'predictions.db'}",
        dagster_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there: Dagster unreachable
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ADMIN_TOKEN_ENV, TOKEN)
        with UvicornThread(create_app(settings)) as running:
            assert httpx.get(f"{running.url}/openapi.json").json() == schema.raw_schema
            assert httpx.get(f"{running.url}/health").json()["model_loaded"]
            yield running


def assert_not_a_crash(case, response) -> None:
    if response.status_code < 500:
        return
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = ""
    reasons = [name for name, prefix in DOCUMENTED_503.items() if detail.startswith(prefix)]
    documented = "503" in case.operation.definition.raw.get("responses", {})
    assert response.status_code == 503 and reasons and documented, (
        f"{case.operation.label} answered {response.status_code}: {response.text[:500]}\n"
        f"reproduce with: {case.as_curl_command(headers=AUTH)}"
    )


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, server):
    response = case.call(base_url=server.url)
    assert_not_a_crash(case, response)
    if case.operation.path == "/retrain" and case.method.upper() == "POST":
        # Negative cases may drop or spoil the token; with the real one, Dagster's absence is a 503.
        authorized = response.request.headers.get("Authorization") == AUTH["Authorization"]
        expected = {503} if authorized else {401, 403}
        assert response.status_code in expected, response.text
    case.validate_response(
        response, checks=[status_code_conformance, content_type_conformance, response_schema_conformance]
    )
