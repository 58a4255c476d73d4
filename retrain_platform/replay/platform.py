"""The running platform a replay talks to: the Dagster daemon and serving, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import httpx
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from retrain_platform.launcher import prepare_home

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]  # fmt: skip
SENSORS = ("drift_sensor", "decision_file_sensor")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class RunningPlatform:
    """`dagster-daemon` (sensors launch runs) and `uvicorn serving.app:app`, each in its own group."""

    def __init__(self, env: dict[str, str], serving_port: int, log_dir: Path):
        self.env, self.port, self.log_dir = env, serving_port, log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.url = f"http://127.0.0.1:{serving_port}"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        commands = {
            "daemon": [_bin("dagster-daemon"), "run", "-m", "retrain_platform.definitions"],
            "serving": [_bin("uvicorn"), "serving.app:app", "--host", "127.0.0.1", "--port", str(self.port)],
        }
        for name, command in commands.items():
            log = (self.log_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)  # fmt: skip

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}); see {self.log_dir / (name + '.log')}")

    def wait_for_serving(self, version: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = httpx.get(f"{self.url}/health", timeout=2).json()
                if str(health.get("model_version")) == str(version):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"serving did not load version {version} within {timeout} s")


def _last_tick(instance: dg.DagsterInstance, name: str) -> float:
    """When the sensor's last finished tick began. A tick still running does not count: the runs
    it asks for are created before it finishes, so until then nobody can see them."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=2)
            return next((tick.timestamp for tick in ticks if tick.status != TickStatus.STARTED), 0.0)
    return 0.0


def settle(instance: dg.DagsterInstance, platform: RunningPlatform, timeout: float) -> None:
    """Wait until every sensor has looked at the platform since now and no run is left to finish;
    again after any run ends, since its outcome (a new model, a decision file) needs a look too."""
    mark = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        platform.check_alive()
        ticked = all(_last_tick(instance, name) > mark for name in SENSORS)
        if ticked and not instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)):
            ended = instance.get_run_records(filters=dg.RunsFilter(updated_after=datetime.fromtimestamp(mark)), limit=1)
            if not ended:
                return
            mark = time.time()
        time.sleep(0.5)
    raise TimeoutError(f"the platform did not settle within {timeout} s")


def platform_env(settings_env: dict[str, str], settings) -> dict[str, str]:
    return {**prepare_home(settings), **settings_env}
