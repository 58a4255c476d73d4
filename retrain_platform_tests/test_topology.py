"""The docker-compose topology as processes on this machine, on the real PostgreSQL server, driven
as a user drives it.

Fresh databases for Dagster, MLflow and predictions (made by deploy/init-databases.sh, as in the
compose stack), then the services of docker-compose.yml with the same commands, each in its own
process group on a loopback port: the gRPC code server, dagster-webserver and dagster-daemon (the
deployment's deploy/dagster.yaml and a workspace pointing at the code server), `mlflow server` on
PostgreSQL with proxied artifacts, and serving. The `retrain` job is launched through the
webserver's GraphQL API as the Materialize button does, serving moves to the promoted version, and
the daemon is SIGKILLed mid-run and restarted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from retrain_platform.datasets import get_spec
from retrain_platform.registry import ModelRegistry
from serving.retrain_launcher import LAUNCH_RUN  # the launchRun mutation the Materialize button sends

from .serving_fixtures import json_rows
from .test_dev_launcher import free_port

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "retrain-flights"

# The Materialize button's launch: the `retrain` job, a short window so that it runs in seconds.
FIRST_RUN = {
    "ops": {
        "raw_data": {"config": {"window_days": 30, "window_end": "2013-02-28"}},
        "candidate_model": {"config": {"max_rounds": 20}},
    }
}
# The run the daemon crashes under: a later window, with gates that let it through (the cooldown
# after the first promotion would reject it: this run is about the crash, not the model).
SECOND_RUN = {
    "ops": {
        "raw_data": {"config": {"window_days": 30, "window_end": "2013-03-31"}},
        "candidate_model": {"config": {"max_rounds": 20}},
        "evaluation_report": {
            "config": {"cooldown_days": 0, "min_improvement": -1.0, "max_brier_degradation": 1.0, "max_auc_degradation": 1.0,
                       "min_label_coverage": 0.0, "auc_floor": 0.5, "recall_floor": 0.0}
        },
    }
}
# Queued while the daemon is down, launched when it is back; default gates reject it (cooldown).
THIRD_RUN = {"ops": {**SECOND_RUN["ops"], "evaluation_report": {"config": {}}}}

RUN = """query Run($runId: ID!) { runOrError(runId: $runId) {
  __typename ... on Run { runId status stats { ... on RunStatsSnapshot { stepsFailed } } } } }"""
DAEMONS = """{ instance { daemonHealth { allDaemonStatuses {
  daemonType required healthy lastHeartbeatTime } } } }"""
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


class Clock:
    def __init__(self):
        self.start = time.monotonic()
        self.marks: list[tuple[str, float]] = []

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic() - self.start))
        print(f"[{self.marks[-1][1]:6.1f} s] {what}", flush=True)


@dataclass
class Service:
    """One service of the compose file, as a process group of its own."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Service:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.log.parent, start_new_session=True,
                                        stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip
        handle.close()
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the group leader until `deadline`, then SIGKILL the group, stragglers included."""
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Topology:
    services: dict[str, Service]
    urls: dict[str, str]
    env: dict[str, str]
    clock: Clock
    artifacts: Path
    dagster_db: str

    def diagnose(self) -> str:
        return "\n".join(f"--- {name} ({'up' if s.running() else 'down'}) ---\n{s.tail()}"
                         for name, s in self.services.items())  # fmt: skip

    def wait_until(self, what: str, predicate, timeout: float, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, service in self.services.items():
                assert service.process is None or service.running() or name == "daemon", (
                    f"{name} exited with {service.process.returncode} while waiting for {what}\n{self.diagnose()}"
                )
            try:
                value = predicate()
            except (httpx.HTTPError, KeyError, TypeError):
                value = None
            if value:
                return value
            time.sleep(interval)
        pytest.fail(f"{what}: not within {timeout} s\n{self.diagnose()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(f"{self.urls['dagster']}/graphql", json={"query": query, "variables": variables or {}},
                              timeout=30)  # fmt: skip
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def launch(self, run_config: dict) -> str:
        """What the Materialize button sends: launchRun of the job with its run config."""
        selector = {"repositoryLocationName": "retrain_platform", "repositoryName": "__repository__",
                    "jobName": "retrain"}  # fmt: skip
        result = self.graphql(LAUNCH_RUN, {"executionParams": {"selector": selector, "runConfigData": run_config}})
        launched = result["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def status(self, run_id: str) -> str:
        return self.graphql(RUN, {"runId": run_id})["runOrError"]["status"]

    def wait_for_run(self, run_id: str, timeout: float = 150) -> str:
        return self.wait_until(f"run {run_id} finished", lambda: (s := self.status(run_id)) in TERMINAL and s, timeout)

    def heartbeats(self) -> dict[str, float]:
        statuses = self.graphql(DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return {s["daemonType"]: s["lastHeartbeatTime"] or 0.0 for s in statuses if s["required"]}

    def serving(self, path: str, **kwargs) -> httpx.Response:
        method = httpx.post if "json" in kwargs else httpx.get
        return method(f"{self.urls['serving']}{path}", timeout=30, **kwargs)


def create_databases(admin_url: sa.URL, names: list[str]) -> None:
    """As the compose stack does: deploy/init-databases.sh, with psql's PG* variables pointing here."""
    psql = shutil.which("psql")
    if psql is None:  # the client is missing, not the server: create them the same way by hand
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return
    env = {**os.environ, "PGHOST": admin_url.host or "127.0.0.1", "PGPORT": str(admin_url.port or 5432),
           "PGPASSWORD": admin_url.password or "", "POSTGRES_USER": admin_url.username or "postgres",
           "POSTGRES_MULTIPLE_DATABASES": ",".join(names)}  # fmt: skip
    result = subprocess.run(["bash", str(REPO / "deploy" / "init-databases.sh")], env=env, capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert all(f"created {name}" in result.stdout for name in names), result.stdout
    again = subprocess.run(["bash", str(REPO / "deploy" / "init-databases.sh")], env=env, capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert again.returncode == 0 and all(f"{name} exists" in again.stdout for name in names), again


def drop_databases(admin_url: sa.URL, names: list[str]) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name in names:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def compose_commands() -> dict[str, list[str]]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    # As compose reads them, with every `${VAR:-default}` at its default.
    return {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", service["command"]).split()
            for name, service in compose["services"].items() if "command" in service}  # fmt: skip


def with_options(command: list[str], values: dict[str, str]) -> list[str]:
    """The compose command with some options' values replaced (hosts, ports and paths differ here)."""
    command = list(command)
    for option, value in values.items():
        command[command.index(option) + 1] = value
    return command


@pytest.fixture
def topology(postgres_url, tmp_path) -> Iterator[Topology]:
    clock = Clock()
    url = sa.engine.make_url(postgres_url)
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    databases = {role: f"{prefix}_{role}" for role in ("dagster", "mlflow", "predictions")}
    create_databases(url.set(database="postgres"), list(databases.values()))
    clock.mark("databases created by deploy/init-databases.sh")

    ports = {name: free_port() for name in ("code_server", "dagster", "mlflow", "serving")}
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in ("dagster", "mlflow", "serving")}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    instance = (REPO / "deploy" / "dagster.yaml").read_text()
    if url.port not in (None, 5432):  # deploy/dagster.yaml names the standard port
        instance = instance.replace("port: 5432", f"port: {url.port}")
    (dagster_home / "dagster.yaml").write_text(instance)
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=ports["code_server"])
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RETRAIN_", "DAGSTER_", "MLFLOW_"))}
    env = {
        **clean,
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_DB": databases["dagster"],
        "RETRAIN_HOME": str(tmp_path / "home"),
        "RETRAIN_MLFLOW_TRACKING_URI": urls["mlflow"],
        "RETRAIN_MLFLOW_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "RETRAIN_MLFLOW_UI_URL": urls["mlflow"],
        "RETRAIN_PREDICTION_STORE_URL": url.set(database=databases["predictions"]).render_as_string(False),
        "RETRAIN_TRAIN_ON_PREDICTION_LOG": "true",
        "RETRAIN_DAGSTER_URL": urls["dagster"],
        "RETRAIN_SERVING_POLL_SECONDS": "1",
        "RETRAIN_ADMIN_TOKEN": "topology-test-token",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    }
    compose = compose_commands()
    workspace_file = str(tmp_path / "workspace.yaml")
    mlflow_command = with_options(compose["mlflow"], {
        "--host": "127.0.0.1", "--port": str(ports["mlflow"]), "--workers": "1",
        "--artifacts-destination": str(tmp_path / "mlflow-artifacts"),
        "--allowed-hosts": "127.0.0.1,127.0.0.1:*,localhost,localhost:*"})  # fmt: skip
    mlflow_env = {**clean, "MLFLOW_BACKEND_STORE_URI": url.set(database=databases["mlflow"]).render_as_string(False)}
    commands = {
        "mlflow": (mlflow_command, mlflow_env),
        "code_server": (with_options(compose["code_server"], {"-h": "127.0.0.1", "-p": str(ports["code_server"])}), env),
        "webserver": (with_options(compose["webserver"], {"-h": "127.0.0.1", "-p": str(ports["dagster"]),
                                                          "-w": workspace_file}), env),
        "daemon": (with_options(compose["daemon"], {"-w": workspace_file}), env),
        "serving": (with_options(compose["serving"], {"--host": "127.0.0.1", "--port": str(ports["serving"])}), env),
    }  # fmt: skip
    (tmp_path / "logs").mkdir()
    services = {
        name: Service(name, [str(BIN / command[0]), *command[1:]], service_env, tmp_path / "logs" / f"{name}.log")
        for name, (command, service_env) in commands.items()
    }
    topology = Topology(services, urls, env, clock, tmp_path / "mlflow-artifacts",
                        url.set(database=databases["dagster"]).render_as_string(False))
    try:
        # As compose orders them: MLflow and the code server first, the rest once the code server answers.
        services["mlflow"].start()
        services["code_server"].start()
        health_check = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(ports["code_server"])]
        topology.wait_until("the code server's health check (as in compose)",
                            lambda: subprocess.run(health_check, capture_output=True, timeout=20, check=False).returncode == 0,
                            timeout=120, interval=1)  # fmt: skip
        clock.mark("code server healthy")
        for name in ("webserver", "daemon", "serving"):
            services[name].start()
        topology.wait_until("MLflow /health", lambda: httpx.get(f"{urls['mlflow']}/health", timeout=2).is_success, 90)
        clock.mark("MLflow healthy")
        topology.wait_until("webserver /server_info",
                            lambda: httpx.get(f"{urls['dagster']}/server_info", timeout=2).is_success, 90)  # fmt: skip
        topology.wait_until("serving /health/live",
                            lambda: httpx.get(f"{urls['serving']}/health/live", timeout=2).is_success, 90)  # fmt: skip
        clock.mark("webserver and serving answer")
        yield topology
    finally:
        for service in services.values():
            service.terminate()
        deadline = time.monotonic() + 15
        for service in services.values():
            service.wait_or_kill(deadline)
        clock.mark("services stopped")
        drop_databases(url.set(database="postgres"), list(databases.values()))
        print("timings: " + ", ".join(f"{what} {at:.1f} s" for what, at in clock.marks))


def promotions(tracking_uri: str) -> list[dict]:
    return [entry for entry in ModelRegistry(tracking_uri, MODEL).history() if entry["action"] == "promote"]


def test_compose_topology_retrains_serves_and_survives_a_daemon_crash(topology):
    t, clock = topology, topology.clock
    services = t.services

    assert t.serving("/health").status_code == 503  # no model registered yet: not ready, but alive

    # -- Materialize: the retrain job through the webserver's GraphQL API -------------------------
    first = t.launch(FIRST_RUN)
    clock.mark(f"first run launched ({first[:8]})")
    assert t.wait_for_run(first) == "SUCCESS", t.diagnose()
    clock.mark("first run SUCCESS")

    # Serving polls the alias (every second here) and swaps version 1 in.
    health = t.wait_until("serving on version 1",
                          lambda: (h := t.serving("/health").json())["model_version"] == "1" and h, 60)  # fmt: skip
    assert health["status"] == "ok" and health["store"]["failed_writes"] == 0
    info = t.wait_until("model info of version 1", lambda: (r := t.serving("/model-info")).status_code == 200
                        and r.json()["version"] == "1" and r.json(), 30)  # fmt: skip
    assert info["dagster_run_id"] == first
    spec = get_spec("flights")
    row = json_rows(spec.load().head(1), spec)[0]
    # Serving runs two workers (as compose does), each polling on its own: ask until one answers.
    prediction = t.wait_until("a prediction from version 1",
                              lambda: (p := t.serving("/predict", json=row)).status_code == 200 and p, 30)  # fmt: skip
    assert prediction.json()["model_version"] == "1"
    clock.mark("serving answers with version 1")

    # -- Daemon crash: SIGKILL its whole process group while a run is in progress ---------------
    second = t.launch(SECOND_RUN)
    # STARTED: the daemon dequeued it and its run worker has begun. (A crash between STARTING and
    # the launch itself would leave no worker; run monitoring fails such a run after its start timeout.)
    t.wait_until("second run dequeued and started", lambda: t.status(second) == "STARTED", 60, interval=0.2)
    services["daemon"].kill()
    clock.mark("daemon SIGKILLed, second run STARTED")
    # With the daemon down, a new launch waits in the queue: only the daemon dequeues runs.
    third = t.launch(THIRD_RUN)
    # The run worker is a child of the code server, not of the daemon: the run goes on without it.
    assert t.wait_for_run(second) == "SUCCESS", t.diagnose()
    clock.mark("second run SUCCESS with the daemon down")
    assert t.status(third) == "QUEUED"

    restarted_at = time.time()
    services["daemon"].start()
    t.wait_until("every daemon heartbeat after the restart",
                 lambda: min(t.heartbeats().values()) > restarted_at, 90, interval=1)  # fmt: skip
    clock.mark("daemon restarted, heartbeats back")
    liveness = subprocess.run([str(BIN / "dagster-daemon"), "liveness-check"], env=t.env, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
    assert liveness.returncode == 0, liveness.stdout + liveness.stderr  # the compose health check
    # The queued run is dequeued by the new daemon; the gates reject it (cooldown): a FAILURE.
    assert t.wait_for_run(third) == "FAILURE", t.diagnose()
    clock.mark("third run dequeued after the restart, rejected by the gates")
    assert t.status(second) == "SUCCESS"  # the restarted daemon leaves the finished run alone

    # -- Nothing promoted twice -----------------------------------------------------------------
    history = promotions(t.urls["mlflow"])
    assert [entry["version"] for entry in history] == ["1", "2"], history
    assert len(history) == [t.status(run) for run in (first, second, third)].count("SUCCESS")
    t.wait_until("serving on version 2", lambda: t.serving("/health").json()["model_version"] == "2", 60)
    t.wait_until("a prediction from version 2", lambda: t.serving("/predict", json=row).json()["model_version"] == "2", 30)
    clock.mark("serving answers with version 2")

    # Where things landed: Dagster's runs in its PostgreSQL database (dagster.yaml), no SQLite
    # instance in DAGSTER_HOME; the models under the MLflow server's artifact destination, uploaded
    # through its proxy (mlflow-artifacts:/), as the compose containers do.
    dagster_db = sa.create_engine(t.dagster_db)
    with dagster_db.connect() as connection:
        stored = connection.execute(sa.text("select run_id, status from runs")).all()
    dagster_db.dispose()
    assert dict(stored) == {first: "SUCCESS", second: "SUCCESS", third: "FAILURE"}
    assert not (Path(t.env["DAGSTER_HOME"]) / "history").exists()
    assert len(list(t.artifacts.rglob("MLmodel"))) == 3  # versions 1, 2 and the rejected 3
    # Serving's predictions landed in the PostgreSQL prediction store.
    store = sa.create_engine(t.env["RETRAIN_PREDICTION_STORE_URL"])

    def logged() -> int:  # each serving worker writes its own predictions: ask the database
        with store.connect() as connection:
            return connection.execute(sa.text("select count(*) from predictions")).scalar_one()

    t.wait_until("predictions written", lambda: logged() >= 2, 30)
    with store.connect() as connection:
        versions = list(connection.execute(sa.text("select model_version from predictions order by created_at")).scalars())
    # The other worker may answer from version 1 for up to a poll after the first one swapped.
    assert versions[0] == "1" and versions[-1] == "2" and set(versions) == {"1", "2"}
    store.dispose()
