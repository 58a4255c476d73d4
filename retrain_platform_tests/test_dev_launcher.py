"""The README's run command: `retrain-platform dev` brings up Dagster, MLflow and serving, and stops cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

JOBS_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } jobs { name } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"retrain-platform dev exited with {process.returncode}"
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout} s")


def test_dev_serves_dagster_mlflow_and_serving_then_stops(tmp_path):
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("dagster", "mlflow", "serving")}
    env = {**os.environ, "RETRAIN_HOME": str(tmp_path / "home"), "RETRAIN_DAGSTER_URL": urls["dagster"],
           "RETRAIN_MLFLOW_UI_URL": urls["mlflow"], "RETRAIN_SERVING_URL": urls["serving"]}  # fmt: skip
    cli = Path(sys.executable).with_name("retrain-platform")
    log = tmp_path / "dev.log"  # a file, not a pipe that nobody reads until the end and that could fill
    with log.open("wb") as sink:
        process = subprocess.Popen([str(cli), "dev"], env=env, start_new_session=True,
                                   stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_for(f"{urls['dagster']}/server_info", process).status_code == 200
        jobs = httpx.post(f"{urls['dagster']}/graphql", json={"query": JOBS_QUERY}, timeout=30).json()
        names = {job["name"] for repo in jobs["data"]["repositoriesOrError"]["nodes"] for job in repo["jobs"]}
        assert {"retrain", "rollback_job"} <= names
        # Serving's Retrain button launches in this location: the name must match.
        assert {repo["location"]["name"] for repo in jobs["data"]["repositoriesOrError"]["nodes"]} == {"retrain_platform"}
        assert wait_for(f"{urls['mlflow']}/health", process).status_code == 200
        assert wait_for(f"{urls['serving']}/health", process).status_code in (200, 503)
        assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
