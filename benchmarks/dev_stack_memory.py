"""Memory of the whole dev stack (`retrain-platform dev`) against its budget of 2.5 GiB.

Starts the launcher on a fresh home and free ports, waits until Dagster (with its code location),
MLflow and serving answer, lets it settle, and measures every process of the stack: the launcher and
all its descendants. It measures again after the UIs have been used (Dagster's pages and GraphQL
queries, MLflow's pages and searches, serving's docs and health). Per process: RSS and PSS from
/proc/<pid>/smaps_rollup (PSS shares the pages that processes have in common, so its sum is what
the stack really holds; the RSS sum counts shared pages once per process and is the upper bound).
The budget is judged on the RSS sum.

    .venv/bin/python benchmarks/dev_stack_memory.py                # as `retrain-platform dev` runs
    .venv/bin/python benchmarks/dev_stack_memory.py --mlflow-jobs  # with MLflow's job consumers on, as before
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BUDGET_BYTES = 2.5 * 1024**3
MIB = 1024**2
JOBS_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name jobs { name } } } } }"""
UI_QUERIES = [
    JOBS_QUERY,
    "{ assetNodes { assetKey { path } groupName } }",
    "{ runsOrError(limit: 20) { ... on Runs { results { runId status } } } }",
    "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_pids(root: int) -> list[int]:
    """The launcher and every descendant of it (the services lead process groups of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def label(pid: int) -> str:
    args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    text = " ".join(args)
    for needle, name in [
        ("retrain-platform", "launcher"),
        ("dagster_webserver", "dagster webserver"),
        ("dagster._daemon", "dagster daemon"),
        ("code-server start", "dagster code server (proxy)"),
        ("api grpc", "dagster code server (definitions)"),
        ("bin/dagster dev", "dagster dev"),
        ("huey_consumer", "mlflow job consumer (huey)"),
        ("_job_runner", "mlflow job runner"),
        ("mlflow/server/uvicorn", "mlflow server worker (uvicorn)"),
        ("bin/mlflow server", "mlflow server"),
        ("resource_tracker", "serving multiprocessing tracker"),
        ("spawn_main", "serving worker"),
        ("serving.app:app", "serving (uvicorn supervisor)"),
    ]:
        if needle in text:
            return name
    return text[:60]


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            values[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return values["Rss"], values["Pss"]


def measure(root: int, title: str) -> tuple[int, int]:
    rows = []
    for pid in stack_pids(root):
        try:
            rows.append((pid, label(pid), *memory(pid)))
        except (OSError, KeyError):  # it ended between the listing and the look
            continue
    rows.sort(key=lambda row: -row[2])
    rss, pss = sum(row[2] for row in rows), sum(row[3] for row in rows)
    print(f"\n{title}: {len(rows)} processes")
    print(f"  {'pid':>7}  {'process':<36} {'RSS MiB':>8} {'PSS MiB':>8}")
    for pid, name, r, p in rows:
        print(f"  {pid:>7}  {name:<36} {r / MIB:>8.0f} {p / MIB:>8.0f}")
    print(f"  {'':>7}  {'total':<36} {rss / MIB:>8.0f} {pss / MIB:>8.0f}")
    print(f"  RSS total / 2.5 GiB budget = {rss / BUDGET_BYTES:.2f}   (PSS total: {pss / BUDGET_BYTES:.2f})")
    return rss, pss


def wait_until_up(urls: dict[str, str], process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    pending = {"dagster": "/server_info", "mlflow": "/health", "serving": "/health"}
    while pending:
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the stack did not come up (launcher: {process.poll()})")
        for name, path in list(pending.items()):
            try:
                httpx.get(urls[name] + path, timeout=2)
                del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    # The code location is loaded once this answers with the job list.
    httpx.post(f"{urls['dagster']}/graphql", json={"query": JOBS_QUERY}, timeout=120).raise_for_status()


def use_the_uis(urls: dict[str, str], rounds: int) -> None:
    with httpx.Client(timeout=60) as client:
        for _ in range(rounds):
            for page in ("/", "/asset-groups", "/runs", "/jobs"):
                client.get(urls["dagster"] + page)
            for query in UI_QUERIES:
                client.post(urls["dagster"] + "/graphql", json={"query": query}).raise_for_status()
            client.get(urls["mlflow"] + "/").raise_for_status()
            client.post(urls["mlflow"] + "/ajax-api/2.0/mlflow/experiments/search",
                        json={"max_results": 100}).raise_for_status()  # fmt: skip
            client.get(urls["mlflow"] + "/ajax-api/2.0/mlflow/registered-models/search").raise_for_status()
            for path in ("/health", "/docs", "/openapi.json"):
                client.get(urls["serving"] + path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlflow-jobs", action="store_true",
                        help="MLflow's job execution on (its default, and the launcher's before it turned it off)")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds after start before measuring (MLflow's job runner starts its consumers ~10 s in)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of UI use before the second measurement")
    args = parser.parse_args()  # fmt: skip

    home = Path(tempfile.mkdtemp(prefix="dev-stack-memory-"))
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("dagster", "mlflow", "serving")}
    env = {**os.environ, "RETRAIN_HOME": str(home), "RETRAIN_DAGSTER_URL": urls["dagster"],
           "RETRAIN_MLFLOW_UI_URL": urls["mlflow"], "RETRAIN_SERVING_URL": urls["serving"],
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if args.mlflow_jobs else "false"}  # fmt: skip
    launcher = Path(sys.executable).with_name("retrain-platform")
    log = home / "dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([str(launcher), "dev"], env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        started = time.monotonic()
        wait_until_up(urls, process)
        print(f"stack up in {time.monotonic() - started:.0f} s (MLflow job execution {'on' if args.mlflow_jobs else 'off'});"
              f" settling {args.settle:.0f} s")  # fmt: skip
        time.sleep(args.settle)
        measure(process.pid, "after start")
        use_the_uis(urls, args.rounds)
        time.sleep(5)
        rss, _ = measure(process.pid, f"after {args.rounds} rounds of UI use")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    print(f"\nlog: {log}")
    return 0 if rss <= BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
