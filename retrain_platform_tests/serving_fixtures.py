"""Helpers for tests that need real registered models and real servers (no conftest here).

- `register_flight_models`: trains small LightGBM models on slices of the real flights data and
  registers them in a temporary MLflow store, production alias on the first.
- `UvicornThread`: a real uvicorn server on a free 127.0.0.1 port, in a thread.
- `MlflowServerThread`: MLflow's own tracking server (its Flask app) on a port, in a thread, that
  can be stopped and started again: a real "registry unreachable".
- `ServingProcess`: `uvicorn serving.app:app` in a session of its own, as deployed, that can be
  killed outright (SIGKILL) and started again on the same home, store and port.
- `postgres_store_url`: a PostgreSQL URL whose tables live in a schema of their own; `store_url`,
  a fixture: a SQLite file, then PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    import pandas as pd

    from retrain_platform.datasets import DatasetSpec
    from retrain_platform.registry import ModelRegistry

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("RETRAIN_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def json_rows(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict]:
    """Feature rows as a JSON client sends them: plain Python values, missing as null."""
    rows = frame[spec.feature_names].astype(object).to_dict("records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]


@dataclass
class RegisteredModels:
    spec: DatasetSpec
    tracking_uri: str
    artifact_root: str
    versions: list[str]
    registry: ModelRegistry
    rows: list[dict]  # real feature rows from the holdout, ready to POST


def register_flight_models(folder: Path, count: int = 2, rows_per_model: int = 20_000) -> RegisteredModels:
    """Train `count` quick models on consecutive slices of the flights data; version 1 is production,
    the last one keeps the challenger alias."""
    # Imported here so that store tests, which share this module, stay quick to collect.
    import mlflow

    from retrain_platform.core.split import time_split
    from retrain_platform.core.training import TrainParams, train_candidate
    from retrain_platform.datasets import get_spec
    from retrain_platform.registry import ModelRegistry, ensure_experiment

    spec = get_spec("flights")
    frame = spec.load()
    folder.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    artifact_root = (folder / "artifacts").as_uri()
    registry = ModelRegistry(tracking_uri, spec.model_name)
    experiment_id = ensure_experiment(tracking_uri, "serving-tests", artifact_root)
    versions, holdout = [], None
    for i in range(count):
        split = time_split(frame.iloc[i * rows_per_model : (i + 1) * rows_per_model], spec)
        trained = train_candidate(split, spec, TrainParams(max_rounds=30))
        window = f"slice-{i}"
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metrics({f"holdout_{k}": v for k, v in trained.holdout_metrics.items()})
            version = registry.register_challenger(
                trained.predictor,
                tags={"dagster_run_id": f"test-run-{i}", "data_window": window, "mlflow_run_id": run.info.run_id},
                example_rows=split.holdout.head(3),
            )
        versions.append(version)
        holdout = split.holdout
    registry.promote(versions[0], expected_current=None)
    return RegisteredModels(spec, tracking_uri, artifact_root, versions, registry, json_rows(holdout.head(500), spec))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UvicornThread:
    """`uvicorn` serving `app` on a free port until `stop()`, which is a graceful shutdown."""

    def __init__(self, app, startup_timeout: float = 60.0):
        import uvicorn

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start (see the log above)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError("uvicorn did not stop within 60 s")

    def __enter__(self) -> UvicornThread:
        return self

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.stop()


class ServingProcess:
    """`uvicorn serving.app:app --workers N`, settings from RETRAIN_* in `env` only. Its output goes
    to a file, not a pipe that nobody reads (a full pipe would block the workers)."""

    def __init__(self, folder: Path, workers: int, env: dict[str, str]):
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RETRAIN_SERVING_POLL_SECONDS": "30", **env}
        self.command = [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port",
                        str(self.port), "--workers", str(workers)]  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 90.0) -> ServingProcess:
        """Start it and wait until /health answers 200 (a model loaded, the log's replay done)."""
        import httpx

        self.starts += 1
        self.log = self.folder / f"uvicorn-{self.starts}.log"
        with self.log.open("wb") as sink:  # a session of its own: its workers go with it, whatever happens here
            self.process = subprocess.Popen(self.command, cwd=REPO_ROOT, env=self.env, stdout=sink,
                                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"serving did not start:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def workers(self) -> list[int]:
        """The pids of the supervisor's worker processes."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def kill(self) -> None:
        """SIGKILL to every process of the server at once: no shutdown code runs anywhere."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as a deployment's stop is; waits for it."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            self.kill()  # workers a supervisor left behind

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> ServingProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.kill()


class MlflowServerThread:
    """MLflow's tracking server over a local store, in-process; `stop()` makes it unreachable."""

    def __init__(self, backend_uri: str, artifact_root: str):
        os.environ["_MLFLOW_SERVER_FILE_STORE"] = backend_uri
        os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = artifact_root
        from mlflow.server import app, handlers  # reads the store from those variables on first use

        # The app is one per process and keeps the first store it opened: forget it, so that this
        # server serves its own store, not an earlier test module's.
        handlers._tracking_store = handlers._model_registry_store = None

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self.start()

    def start(self) -> None:
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """A prediction store's URL: a SQLite file, then the test PostgreSQL (which `postgres_url` may skip)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'predictions.db'}"
    else:
        with postgres_store_url(request.getfixturevalue("postgres_url")) as url:
            yield url


@contextlib.contextmanager
def postgres_store_url(base_url: str = POSTGRES_URL) -> Iterator[str]:
    """A URL for the test PostgreSQL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"retrain_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def stored_prediction(store, prediction_id: str) -> dict | None:
    """The row the log holds for a prediction id, read straight from its table (None: not stored)."""
    from retrain_platform.store import predictions

    with store.engine.connect() as conn:
        row = conn.execute(sa.select(predictions).where(predictions.c.prediction_id == prediction_id)).first()
    return dict(row._mapping) if row is not None else None
