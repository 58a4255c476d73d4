"""The dev stack of `retrain-platform dev`: Dagster (UI + daemon), the MLflow UI and serving as real
processes on embedded defaults under RETRAIN_HOME, started together and stopped in order.

Stop order, and why: serving first, since it is the door for outside traffic and launches retrain
runs through Dagster, so nothing new arrives while the rest goes down (its prediction log is flushed
on the way out); then `dagster dev`, which stops its own webserver and daemon (no sensor tick is
cut off halfway) and then its code server; MLflow last, since it is what the others read and write
(the registry serving polls, the runs' tracking) and, as the UI, worth keeping to the end. Each
service gets SIGINT alone and stops its own children; nothing is killed unless it hangs.
"""

from __future__ import annotations

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
START_ORDER = ("mlflow", "dagster", "serving")
STOP_ORDER = ("serving", "dagster", "mlflow")
# How long each service may take to stop by itself after its SIGINT. `dagster dev` waits up to
# 60 s for its webserver and daemon; a few seconds is normal, more means something hangs.
GRACE_SECONDS = {"serving": 15.0, "dagster": 30.0, "mlflow": 15.0}
# After a service's leader exits, how long the rest of its group (dagster dev's code server ends
# a moment after it) may take before it is forced.
GROUP_GRACE_SECONDS = 15.0
# Warnings every start would print, each known and accepted, silenced by the start of their message
# (PYTHONWARNINGS syntax, action:message-prefix) in that service's processes only; any other warning
# still shows.
QUIET_WARNINGS = {
    # `dagster dev` points at `dg dev`, which is not installed and runs the same code.
    "dagster": ["ignore:Function `dev_command` is superseded",
                # dagster-mlflow, a deliberate dependency, is beta as a whole: importing it warns in
                # every process that loads the code (the code server, each run).
                "ignore:Function `_create_mlflow_run_hook` is currently in beta"],
    # MLflow 3.17's own server imports a deprecated Starlette module.
    "mlflow": ["ignore:starlette.middleware.wsgi is deprecated"],
    "serving": [],
}  # fmt: skip


def _bin(name: str) -> str:
    """Console scripts of this environment, whether or not its bin/ is on PATH."""
    return str(Path(sys.executable).with_name(name))


def _host_port(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", str(parsed.port or 80)


def prepare_home(settings: Settings) -> dict[str, str]:
    """Create every folder the platform reads, the embedded Dagster instance and the MLflow store's
    tables; return the environment the services run in."""
    for folder in settings.folders():
        folder.mkdir(parents=True, exist_ok=True)
    instance_yaml = settings.dagster_home / "dagster.yaml"
    if not instance_yaml.exists():  # an edited copy is the user's to keep
        shutil.copy(EMBEDDED_INSTANCE, instance_yaml)
    # The code location gets the name serving launches runs in (`dagster dev -m` would name it
    # after the module), the same as in the repository's and the deployment's workspace.yaml.
    (settings.dagster_home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: retrain_platform.definitions\n"
        f"      location_name: {settings.dagster_location}\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home), "RETRAIN_HOME": str(settings.home_dir)}
    if settings.history_path and "://" not in settings.history_path:
        # Dagster runs in DAGSTER_HOME (see `service_env`): a relative path must keep its meaning.
        env["RETRAIN_HISTORY_PATH"] = str(Path(settings.history_path).expanduser().resolve())
    create_mlflow_tables(settings.tracking_uri, env)
    return env


def create_mlflow_tables(tracking_uri: str, env: dict[str, str]) -> None:
    """Create the embedded MLflow store's tables before any service opens it: the MLflow server and
    serving would both migrate a fresh SQLite file at start, and the loser crashes. In a process of
    its own, so that the launcher, alive as long as the stack, never holds MLflow in memory."""
    if tracking_uri.startswith("sqlite:"):
        script = (
            "import sys\nfrom mlflow.tracking import MlflowClient\n"
            "client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])\n"
            "client.search_experiments(max_results=1)\nclient.search_registered_models(max_results=1)\n"
        )
        subprocess.run([sys.executable, "-c", script, tracking_uri], env=env, check=True)


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


def service_env(name: str, env: dict[str, str], settings: Settings) -> tuple[dict[str, str], Path | None]:
    """Each service's environment and working folder."""
    env = dict(env)
    quiet = QUIET_WARNINGS[name]
    if quiet:
        env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""), *quiet]))
    if name == "mlflow":
        # Its job execution (GenAI scoring, trace archival: unused here) is a job runner and seven
        # huey consumers of 170-240 MB each. The caller's own setting wins, so both can be measured.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    if name == "dagster":
        # `dagster dev` warns about any dagster.yaml in its working folder other than DAGSTER_HOME's
        # (the repository root has one); DAGSTER_HOME itself is the folder where that is true.
        return env, settings.dagster_home
    return env, None


class Stack:
    """The three services, each the leader of a process group of its own: a Ctrl-C in the terminal
    reaches the launcher alone, which then stops them in order."""

    def __init__(self, settings: Settings, env: dict[str, str]):
        self.settings, self.env = settings, env
        self.processes: dict[str, subprocess.Popen] = {}
        self.signalled: dict[str, float] = {}
        self.settled: set[str] = set()
        self.force = False  # a second Ctrl-C: stop without waiting

    def start(self) -> None:
        for name, command in ((name, commands(self.settings)[name]) for name in START_ORDER):
            env, cwd = service_env(name, self.env, self.settings)
            self.processes[name] = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> None:
        """Serving, then Dagster, then MLflow (the module's docstring says why)."""
        self._signal("serving")
        self._settle("serving")
        self._signal("dagster")
        self._wait(lambda: self._leader_gone("dagster"), GRACE_SECONDS["dagster"])
        # `dagster dev` exits once its webserver and daemon have; its code server, told to stop,
        # ends a moment later. Runs write to MLflow's store directly, so MLflow need not wait for
        # that tail, unless runs track through the MLflow server.
        if self.settings.tracking_uri.startswith(("http:", "https:")):
            self._settle("dagster")
        self._signal("mlflow")
        for name in STOP_ORDER:
            self._settle(name)

    def _signal(self, name: str) -> None:
        process = self.processes.get(name)
        self.signalled[name] = time.monotonic()
        if process is not None and process.poll() is None:
            # SIGINT to the leader alone: uvicorn, `mlflow server` and `dagster dev` each stop what
            # they started. A signal to the whole group would reach those children too, twice
            # and out of order (dagster's code server before the daemon that is still using it).
            _log(f"stopping {name}")
            process.send_signal(signal.SIGINT)

    def _leader_gone(self, name: str) -> bool:
        return name not in self.processes or self.processes[name].poll() is not None

    def _settle(self, name: str) -> None:
        """Wait until every process of the service has exited, forcing it after the grace time."""
        process = self.processes.get(name)
        if process is None or name in self.settled:
            return
        deadline = self.signalled[name] + GRACE_SECONDS[name]
        self._wait(lambda: self._leader_gone(name), deadline - time.monotonic())
        self._wait(lambda: not group_members(process.pid), GROUP_GRACE_SECONDS)
        if group_members(process.pid):
            self._force(name, process)
        process.poll()
        self.settled.add(name)
        _log(f"{name} stopped in {time.monotonic() - self.signalled[name]:.1f} s")

    def _wait(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and not self.force and time.monotonic() < deadline:
            time.sleep(0.1)

    def _force(self, name: str, process: subprocess.Popen) -> None:
        steps = [(signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)]
        for sig, wait in steps[1:] if self.force else steps:
            members = group_members(process.pid)
            if not members:
                return
            _log(f"forced stop of {name}: {signal.Signals(sig).name} to {len(members)} process(es) {sorted(members)}")
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while group_members(process.pid) and time.monotonic() < deadline:
                process.poll()
                time.sleep(0.05)


def group_members(pgid: int) -> set[int]:
    """Live processes (not zombies) of a process group."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether anything of the group is left
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return set()
        return {pgid}
    members = set()
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
                state, _, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, IndexError, ValueError):
                continue
            if int(pgrp) == pgid and state != "Z":
                members.add(int(entry.name))
    return members


def _log(message: str) -> None:
    print(f"retrain-platform: {message}", file=sys.stderr, flush=True)


def dev(settings: Settings) -> int:
    """Run the stack until Ctrl-C (SIGINT), SIGTERM or SIGHUP, or until a service exits by itself."""
    stack: Stack | None = None
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        if stopping and stack is not None:
            stack.force = True
            _log("stopping at once")
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        env = prepare_home(settings)
    except subprocess.CalledProcessError:
        if stopping:  # a Ctrl-C in the terminal also reached the table creation
            return 0
        raise
    if stopping:
        return 0
    stack = Stack(settings, env)
    try:
        stack.start()
        print(f"retrain_platform home: {settings.home_dir}")
        print(f"  Dagster UI  {settings.dagster_url}  (Materialize the 'retrain' job or the asset graph)")
        print(f"  MLflow UI   {settings.mlflow_ui_url}")
        print(f"  serving     {settings.serving_url}/docs")
        print("Ctrl-C stops all three.", flush=True)
        while not stopping and not stack.exited():
            time.sleep(0.2)
    finally:
        exited = stack.exited() if not stopping else {}
        stack.stop()
    if exited:
        _log(f"a service stopped on its own: {exited}")
        return 1
    return 0
