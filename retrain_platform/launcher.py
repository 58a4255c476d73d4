"""The dev stack of `retrain-platform dev`: Dagster (UI + daemon), the MLflow UI and serving as
processes on embedded defaults under RETRAIN_HOME. The command line and the replay both use it."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from retrain_platform.settings import Settings

EMBEDDED_INSTANCE = Path(__file__).parent / "instance" / "embedded.yaml"


def _bin(name: str) -> str:
    """Console scripts of this environment, whether or not its bin/ is on PATH."""
    return str(Path(sys.executable).with_name(name))


def _host_port(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", str(parsed.port or 80)


def prepare_home(settings: Settings) -> dict[str, str]:
    """Create the home folder and the embedded Dagster instance; return the environment to run in."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    (settings.home_dir / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)
    instance_yaml = settings.dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        shutil.copy(EMBEDDED_INSTANCE, instance_yaml)
    # The code location gets the name serving launches runs in (`dagster dev -m` would name it
    # after the module), the same as in the deployment's workspace.yaml.
    (settings.dagster_home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: retrain_platform.definitions\n"
        f"      location_name: {settings.dagster_location}\n"
    )
    create_mlflow_tables(settings.tracking_uri)
    return {**os.environ, "DAGSTER_HOME": str(settings.dagster_home), "RETRAIN_HOME": str(settings.home_dir)}


def create_mlflow_tables(tracking_uri: str) -> None:
    """Create the embedded MLflow store's tables before any service opens it: the MLflow server and
    serving would both migrate a fresh SQLite file at start, and the loser crashes."""
    if tracking_uri.startswith("sqlite:"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)


def commands(settings: Settings) -> dict[str, list[str]]:
    dagster_host, dagster_port = _host_port(settings.dagster_url)
    mlflow_host, mlflow_port = _host_port(settings.mlflow_ui_url)
    serving_host, serving_port = _host_port(settings.serving_url)
    return {
        "dagster": [_bin("dagster"), "dev", "-w", str(settings.dagster_home / "workspace.yaml"),
                    "-h", dagster_host, "-p", dagster_port],
        "mlflow": [_bin("mlflow"), "server", "--backend-store-uri", settings.tracking_uri,
                   "--default-artifact-root", settings.artifact_root, "--host", mlflow_host, "--port", mlflow_port,
                   "--workers", "1"],
        "serving": [_bin("uvicorn"), "serving.app:app", "--host", serving_host, "--port", serving_port,
                    "--workers", str(settings.serving_workers)],
    }  # fmt: skip


def dev(settings: Settings) -> int:
    env = prepare_home(settings)
    # Each service gets its own process group so that stopping also stops what it spawned
    # (dagster dev starts a webserver, a daemon and a code server).
    processes = {name: subprocess.Popen(cmd, env=env, start_new_session=True) for name, cmd in commands(settings).items()}
    print(f"retrain_platform home: {settings.home_dir}")
    print(f"  Dagster UI  {settings.dagster_url}  (Materialize the 'retrain' job or the asset graph)")
    print(f"  MLflow UI   {settings.mlflow_ui_url}")
    print(f"  serving     {settings.serving_url}/docs")
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    exited = {name: p.returncode for name, p in processes.items() if not stopping}
    if exited:
        print(f"a service stopped on its own: {exited}", file=sys.stderr)
        return 1
    return 0
