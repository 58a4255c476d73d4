"""The README's run command and the first thing a Dagster user types, as real processes:
`retrain-platform dev` brings up Dagster, MLflow and serving without a warning and stops them in
order within seconds; `dagster dev` in the repository root runs the embedded instance."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from retrain_platform.launcher import EMBEDDED_INSTANCE, prepare_home
from retrain_platform.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JOBS_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } jobs { name } } } } }"""
QUEUE_QUERY = """{ instance { runQueuingSupported runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }"""
# A few seconds on an idle machine; on a shared one the bound grows with the load that was there
# before the stack started (every process's shutdown is CPU work: interpreters tearing down).
STOP_BOUND_SECONDS = 10
# What a forced stop prints: the launcher's own escalation and `dagster dev`'s for its children.
FORCED = re.compile(r"SIGKILL|forced|did not terminate cleanly|killing the process", re.IGNORECASE)
WARNING = re.compile(r"warning", re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{tail(log)}"
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout} s")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process (zombies left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if state != "Z":
                found[int(entry.name)] = (int(ppid), int(pgrp))
    return found


def in_groups(groups: set[int], found: dict[int, tuple[int, int]] | None = None) -> set[int]:
    return {pid for pid, (_, pgrp) in (processes() if found is None else found).items() if pgrp in groups}


def stop_bound() -> float:
    return STOP_BOUND_SECONDS * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def graphql(url: str, query: str) -> dict:
    answer = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60).json()
    assert "errors" not in answer, answer
    return answer["data"]


def kill_groups(groups: set[int]) -> None:
    """Clean-up after a failed test only; the assertions are about what happened before."""
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_prepare_home_creates_every_folder_the_platform_reads(tmp_path):
    settings = Settings(home=tmp_path / "home")
    env = prepare_home(settings)
    home = tmp_path / "home"
    for folder in ("decisions/inbox", "decisions/archive", "decisions/rejected", "reports", "cache", "storage",
                   "dagster", "mlflow/artifacts"):  # fmt: skip
        assert (home / folder).is_dir(), folder
    assert (settings.dagster_home / "dagster.yaml").read_text() == EMBEDDED_INSTANCE.read_text()
    workspace = yaml.safe_load((settings.dagster_home / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["location_name"] == "retrain_platform"
    assert (home / "mlflow" / "mlflow.db").stat().st_size > 0  # tables made before any service starts
    assert env["DAGSTER_HOME"] == str(settings.dagster_home) and env["RETRAIN_HOME"] == str(home.resolve())


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_dev_serves_without_warnings_and_stops_in_order(tmp_path, stop_signal):
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("dagster", "mlflow", "serving")}
    env = {**os.environ, "RETRAIN_HOME": str(tmp_path / "home"), "RETRAIN_DAGSTER_URL": urls["dagster"],
           "RETRAIN_MLFLOW_UI_URL": urls["mlflow"], "RETRAIN_SERVING_URL": urls["serving"]}  # fmt: skip
    log = tmp_path / "dev.log"  # a file, not a pipe that nobody reads until the end and that could fill
    bound = stop_bound()
    with log.open("wb") as sink:
        # From the repository root, where a dagster.yaml lies, as a user would start it.
        process = subprocess.Popen([str(BIN / "retrain-platform"), "dev"], env=env, cwd=REPO, start_new_session=True,
                                   stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    groups = {process.pid}
    try:
        assert wait_for(f"{urls['dagster']}/server_info", process, log).status_code == 200
        nodes = graphql(urls["dagster"], JOBS_QUERY)["repositoriesOrError"]["nodes"]
        assert {"retrain", "rollback_job"} <= {job["name"] for repo in nodes for job in repo["jobs"]}
        # Serving's Retrain button launches in this location: the name must match.
        assert {repo["location"]["name"] for repo in nodes} == {"retrain_platform"}
        assert wait_for(f"{urls['mlflow']}/health", process, log).status_code == 200
        assert wait_for(f"{urls['serving']}/health", process, log).status_code in (200, 503)
        home = tmp_path / "home"
        for folder in ("decisions/inbox", "decisions/archive", "decisions/rejected", "reports", "cache", "storage"):
            assert (home / folder).is_dir(), folder
        # Each service leads a process group of its own; find them by the command each runs.
        services = {}
        for pid, (ppid, _) in processes().items():
            if ppid == process.pid:
                script = Path(os.fsdecode((Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[1])).name
                services[{"dagster": "dagster", "mlflow": "mlflow", "uvicorn": "serving"}.get(script, script)] = pid
        assert set(services) == {"dagster", "mlflow", "serving"}, services
        groups |= set(services.values())
        members = {name: in_groups({pid}) for name, pid in services.items()}
        assert len(members["dagster"]) >= 4, "dagster dev, its webserver, daemon and code server"
        # MLflow's job consumers (huey) are off: its server and the uvicorn it runs, nothing else.
        mlflow_commands = [(Path("/proc") / str(pid) / "cmdline").read_bytes() for pid in members["mlflow"]]
        assert not [command for command in mlflow_commands if b"huey" in command or b"_job_runner" in command]
        assert len(members["mlflow"]) == 2, mlflow_commands

        process.send_signal(stop_signal)
        sent = time.monotonic()
        watched = set().union(*members.values())
        gone: dict[int, float] = {}  # pid -> seconds after the signal when it was no longer there
        while process.poll() is None and time.monotonic() - sent < 60:
            now, found = time.monotonic() - sent, processes()
            gone.update({pid: now for pid in watched - set(found) - set(gone)})
            time.sleep(0.1)
        took = time.monotonic() - sent
        output = log.read_text(errors="replace")
        assert process.returncode == 0, tail(log)
        assert not in_groups(groups), "processes left behind"
        gone.update({pid: took for pid in watched - set(gone)})
        first = {name: min(gone[pid] for pid in pids) for name, pids in members.items()}
        last = {name: max(gone[pid] for pid in pids) for name, pids in members.items()}
        assert took < bound, f"stopped in {took:.1f} s (bound {bound:.0f} s): {first=} {last=}\n{tail(log)}"
        assert not FORCED.findall(output), tail(log)
        # In order: serving is gone before Dagster begins to stop; MLflow begins once `dagster dev`
        # has stopped its webserver and daemon and exited.
        assert last["serving"] <= first["dagster"], (first, last)
        assert gone[services["dagster"]] <= first["mlflow"], (first, last, gone[services["dagster"]])
        warnings = [line for line in output.splitlines() if WARNING.search(line)]
        assert not warnings, "\n".join(warnings)
    finally:
        if process.poll() is None or in_groups(groups):
            kill_groups(groups)
            process.wait(timeout=10)


def test_dagster_dev_in_the_repository_root_runs_the_embedded_instance(tmp_path):
    """`dagster dev` typed in the repository root: the root's dagster.yaml (SQLite, the queued run
    coordinator and the promotion limit) on a temporary instance folder, the code in location
    `retrain_platform`; and it stops cleanly."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    env["RETRAIN_HOME"] = str(tmp_path / "home")
    log = tmp_path / "dagster-dev.log"
    before = set(REPO.glob(".tmp_dagster_home_*"))
    with log.open("wb") as sink:
        process = subprocess.Popen([str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=REPO,
                                   start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(f"{url}/server_info", process, log).status_code == 200
        nodes = graphql(url, JOBS_QUERY)["repositoriesOrError"]["nodes"]
        assert {repo["location"]["name"] for repo in nodes} == {"retrain_platform"}, nodes
        assert "retrain" in {job["name"] for repo in nodes for job in repo["jobs"]}
        instance = graphql(url, QUEUE_QUERY)["instance"]
        assert instance["runQueuingSupported"], instance
        assert instance["runQueueConfig"]["maxConcurrentRuns"] == 2
        limits = yaml.safe_load(instance["runQueueConfig"]["tagConcurrencyLimitsYaml"])
        assert {"key": "retrain_platform/promotion", "limit": 1} in limits
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, tail(log)
        deadline = time.monotonic() + 30  # its code server ends a moment after it
        while in_groups({process.pid}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not in_groups({process.pid}), "processes left behind"
        output = log.read_text(errors="replace")
        assert "DAGSTER_PG" not in output and "postgres" not in output.lower(), tail(log)
        assert not FORCED.findall(output), tail(log)
        assert set(REPO.glob(".tmp_dagster_home_*")) == before, "the temporary instance folder is left behind"
    finally:
        if process.poll() is None or in_groups({process.pid}):
            kill_groups({process.pid})
            process.wait(timeout=10)
