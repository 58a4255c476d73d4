"""The production topology as processes on loopback, on the real PostgreSQL: a gRPC code server,
the webserver and the daemon sharing the deployment dagster.yaml, an MLflow server on PostgreSQL,
and serving on a PostgreSQL prediction store. Driven as a user: the retrain job is launched over
GraphQL as the Materialize button does, and serving moves to the new version. Then the daemon is
killed with SIGKILL while a run waits in the queue, and restarted: the run completes and nothing is
promoted twice."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from retrain_platform.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[1]
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
WINDOW = {"raw_data": {"config": {"window_days": 30, "window_end": "2013-02-28"}},
          "candidate_model": {"config": {"max_rounds": 20}},
          "evaluation_report": {"config": {"cooldown_days": 0, "min_f1_improvement": -1.0, "auc_floor": 0.5,
                                           "recall_floor": 0.0}}}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bin_(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def wait_until(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout} s")


@pytest.fixture
def databases(postgres_url):
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"retrain_{kind}_{suffix}" for kind in ("dagster", "mlflow", "predictions")}
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names.values():
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(postgres_url), names
    with admin.connect() as connection:
        for name in names.values():
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Services:
    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.processes = tmp, env, {}

    def start(self, name: str, command: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)  # fmt: skip

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.processes):
            try:
                self.kill(name, signal.SIGTERM)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass


@pytest.mark.postgres
def test_topology_launch_promote_serve_and_survive_a_daemon_crash(databases, tmp_path):
    url, names = databases
    pg = f"postgresql+psycopg2://{url.username}@{url.host}:{url.port or 5432}"
    ports = {name: free_port() for name in ("grpc", "webserver", "mlflow", "serving")}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": ports["grpc"], "location_name": "retrain_platform"}}]}))  # fmt: skip
    tracking = f"http://127.0.0.1:{ports['mlflow']}"
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_USER": url.username,
           "DAGSTER_PG_PASSWORD": url.password or "", "DAGSTER_PG_HOST": url.host, "DAGSTER_PG_DB": names["dagster"],
           "RETRAIN_HOME": str(tmp_path / "home"), "RETRAIN_MLFLOW_TRACKING_URI": tracking,
           "RETRAIN_MLFLOW_ARTIFACT_ROOT": "mlflow-artifacts:/",
           "RETRAIN_PREDICTION_STORE_URL": f"{pg}/{names['predictions']}",
           "RETRAIN_DAGSTER_URL": f"http://127.0.0.1:{ports['webserver']}", "RETRAIN_SERVING_POLL_SECONDS": "1",
           "RETRAIN_ADMIN_TOKEN": "topology-token", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}  # fmt: skip
    services = Services(tmp_path, env)
    started = time.monotonic()
    try:
        services.start("mlflow", [bin_("mlflow"), "server", "--host", "127.0.0.1", "--port", str(ports["mlflow"]),
                                  "--workers", "1", "--backend-store-uri", f"{pg}/{names['mlflow']}",
                                  "--artifacts-destination", str(tmp_path / "artifacts")])  # fmt: skip
        services.start("code_server", [bin_("dagster"), "code-server", "start", "-m", "retrain_platform.definitions",
                                       "-h", "127.0.0.1", "-p", str(ports["grpc"]), "--location-name", "retrain_platform"])  # fmt: skip
        services.start("webserver", [bin_("dagster-webserver"), "-h", "127.0.0.1", "-p", str(ports["webserver"]),
                                     "-w", str(workspace)])  # fmt: skip
        services.start("daemon", [bin_("dagster-daemon"), "run", "-w", str(workspace)])
        services.start("serving", [bin_("uvicorn"), "serving.app:app", "--host", "127.0.0.1", "--port", str(ports["serving"])])
        dagster = f"http://127.0.0.1:{ports['webserver']}"
        serving = f"http://127.0.0.1:{ports['serving']}"
        wait_until(lambda: httpx.get(f"{tracking}/health", timeout=2).status_code == 200, "mlflow server")
        wait_until(lambda: httpx.get(f"{serving}/health/live", timeout=2).status_code == 200, "serving")

        def graphql(query: str, variables: dict) -> dict:
            return httpx.post(f"{dagster}/graphql", json={"query": query, "variables": variables}, timeout=30).json()["data"]

        def launch() -> str:
            params = {"selector": {"repositoryLocationName": "retrain_platform", "repositoryName": "__repository__",
                                   "jobName": "retrain"}, "runConfigData": {"ops": WINDOW}}  # fmt: skip
            answer = wait_until(lambda: graphql(LAUNCH, {"params": params})["launchRun"], "the code location to load")
            assert answer["__typename"] == "LaunchRunSuccess", answer
            return answer["run"]["runId"]

        def status(run_id: str) -> str:
            return graphql(STATUS, {"id": run_id})["runOrError"]["status"]

        first = launch()
        assert wait_until(lambda: status(first) in ("SUCCESS", "FAILURE") and status(first), "first run", 300) == "SUCCESS"
        health = wait_until(lambda: httpx.get(f"{serving}/health", timeout=2).json()["model_version"] == "1"
                            and httpx.get(f"{serving}/health", timeout=2).json(), "serving to load version 1")  # fmt: skip
        assert health["status"] == "ok"
        print(f"first run and serving on version 1 after {time.monotonic() - started:.0f} s")

        # The daemon dies with a run in the queue (it dequeues queued runs): the run waits, then goes on.
        services.kill("daemon")
        second = launch()
        time.sleep(3)
        assert status(second) == "QUEUED"
        services.start("daemon", [bin_("dagster-daemon"), "run", "-w", str(workspace)])
        assert wait_until(lambda: status(second) in ("SUCCESS", "FAILURE") and status(second), "second run", 300) == "SUCCESS"
        wait_until(lambda: httpx.get(f"{serving}/health", timeout=2).json()["model_version"] == "2", "serving on v2")
        row = json.loads((REPO / "retrain_platform_tests" / "data" / "flight.json").read_text())
        answer = httpx.post(f"{serving}/predict", json=row, timeout=10).json()
        assert answer["model_version"] == "2"
        history = ModelRegistry(tracking, "retrain-flights").history()
        promoted = [h["version"] for h in history if h["action"] == "promote"]
        assert promoted == ["1", "2"]  # each run promoted once, nothing twice
        print(f"daemon crash survived; done after {time.monotonic() - started:.0f} s")
    finally:
        services.stop_all()
