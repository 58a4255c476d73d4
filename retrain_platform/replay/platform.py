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

from retrain_platform.launcher import prepare_home
from retrain_platform.store import PredictionStore

from .rounds import SensorRounds

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]  # fmt: skip
# While runs go, the sensors still look every so often (a decision file is archived once its run
# exists), as the daemon's own loop would.
ROUND_DURING_RUNS_SECONDS = 5.0


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class RunningPlatform:
    """The Dagster daemon (its sensors launch runs; they tick in rounds the replay asks for, see
    rounds.py) and `uvicorn serving.app:app`, each in its own process group."""

    def __init__(self, env: dict[str, str], serving_port: int, home: Path):
        self.env, self.port, self.log_dir = env, serving_port, home / "logs"
        self.rounds = SensorRounds(home / "sensor_rounds")
        self.processes: dict[str, subprocess.Popen] = {}
        self.url = f"http://127.0.0.1:{serving_port}"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        commands = {
            "daemon": [sys.executable, "-m", "retrain_platform.replay.daemon", str(self.rounds.folder),
                       "-m", "retrain_platform.definitions"],
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


def wait_until_logged(store: PredictionStore, served: int, platform: RunningPlatform, timeout: float) -> None:
    """Serving answers before its log writer ships the predictions to the store (about every
    second): the sensors must see every prediction of the day, not the day up to the last ship."""
    deadline = time.monotonic() + timeout
    while store.count_predictions() < served:
        platform.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"serving did not store its {served} predictions within {timeout} s")
        time.sleep(0.05)


def settle(instance: dg.DagsterInstance, platform: RunningPlatform, timeout: float) -> None:
    """Let every sensor look at the platform as it is now, and wait until no run is left to
    finish; again after any run ends, since its outcome (a new model, a decision file) needs a
    look too."""
    deadline = time.monotonic() + timeout

    def left() -> float:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the platform did not settle within {timeout} s")
        return deadline - time.monotonic()

    mark = time.time()
    platform.rounds.run_one(left(), platform.check_alive)
    looked = time.monotonic()
    while True:
        if instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE), limit=1):
            if time.monotonic() - looked >= ROUND_DURING_RUNS_SECONDS:
                platform.rounds.run_one(left(), platform.check_alive)
                looked = time.monotonic()
            left()
            platform.check_alive()
            time.sleep(0.2)
            continue
        if not instance.get_run_records(filters=dg.RunsFilter(updated_after=datetime.fromtimestamp(mark)), limit=1):
            return
        mark = time.time()
        platform.rounds.run_one(left(), platform.check_alive)
        looked = time.monotonic()


def platform_env(settings_env: dict[str, str], settings) -> dict[str, str]:
    return {**prepare_home(settings), **settings_env}
