"""Serving scaled out behind a real load balancer: one, two and three replicas behind HAProxy
(deploy/haproxy.cfg, Debian's `haproxy` package), the prediction log on PostgreSQL, each figure a
ratio against one replica without a balancer, measured in the same run. On a machine of two cores
the point is what the balancer and the shared store cost, not linear growth.

Then, on the same machine and the same load, HAProxy over two one-worker replicas against one
server of two uvicorn workers whose connections `serving/balancer.py` evens out (the home-made
balancer inside one machine).

Each replica is `uvicorn serving.app:app --workers 1` with a home of its own, a quick LightGBM
model from a local MLflow store, the log shipped to the test PostgreSQL (RETRAIN_TEST_POSTGRES_URL,
a schema of its own, dropped afterwards). Load: `wrk` (one thread, Debian's `wrk` package) posting
one flight to /predict over `--connections` keep-alive connections, or, without wrk, the closed-loop
Python client of benchmarks/serving.py. The setups take turns, in an order rotated every round;
ratios are taken within a round, their median over the rounds reported.

    .venv/bin/python benchmarks/serving_scale.py [--seconds 3] [--warmup 1] [--rounds 3] [--connections 8]
"""

import argparse
import contextlib
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # before benchmarks/, whose serving.py is not the `serving` package

from retrain_platform_tests.load_balancer import PACKAGE, HAProxy, haproxy_binary  # noqa: E402
from retrain_platform_tests.serving_fixtures import (  # noqa: E402
    POSTGRES_URL,
    ServingProcess,
    postgres_store_url,
    register_flight_models,
)

BASELINE = "1 replica, no balancer"


def load_generators():
    """benchmarks/serving.py's clients (wrk, or its Python client), loaded from the file: its
    name is the app package's."""
    spec = importlib.util.spec_from_file_location("serving_benchmark", Path(__file__).with_name("serving.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replica(folder: Path, tracking_uri: str, store_url: str, workers: int = 1) -> ServingProcess:
    env = {"RETRAIN_HOME": str(folder / "home"), "RETRAIN_MLFLOW_TRACKING_URI": tracking_uri,
           "RETRAIN_PREDICTION_STORE_URL": store_url, "UVICORN_ACCESS_LOG": "false"}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    return ServingProcess(folder, workers=workers, env=env)


def measure(client, url: str, body: bytes, connections: int, seconds: float, warmup: float) -> dict:
    client.run(f"{url}/predict", body, connections, warmup)
    return client.run(f"{url}/predict", body, connections, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if haproxy_binary() is None:
        sys.exit(f"HAProxy is not installed: apt-get install -y {PACKAGE}")

    clients = load_generators()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serving-scale-")))
        client = clients.Wrk(folder) if shutil.which("wrk") else clients.PythonClient()
        models = register_flight_models(folder / "mlflow", count=1)
        body = json.dumps(models.rows[0]).encode()
        store_url = stack.enter_context(postgres_store_url(POSTGRES_URL))
        replicas = []
        for i in range(3):
            replicas.append(stack.enter_context(replica(folder / f"replica{i + 1}", models.tracking_uri, store_url)))
            replicas[-1].start()
        two_workers = stack.enter_context(replica(folder / "two-workers", models.tracking_uri, store_url, workers=2))
        two_workers.start()
        balanced = {n: stack.enter_context(HAProxy(folder, [f"127.0.0.1:{r.port}" for r in replicas[:n]]))
                    for n in (1, 2, 3)}  # fmt: skip
        setups = {
            BASELINE: replicas[0].url,
            "1 replica behind HAProxy": balanced[1].url,
            "2 replicas behind HAProxy": balanced[2].url,
            "3 replicas behind HAProxy": balanced[3].url,
            "1 server, 2 workers, serving/balancer.py": two_workers.url,
        }
        print(f"load: {client.name}, {args.connections} connections, {args.seconds:g} s per run "
              f"after {args.warmup:g} s of warm-up, {args.rounds} rounds; the log on PostgreSQL")  # fmt: skip
        results: dict[str, list[dict]] = {name: [] for name in setups}
        order = list(setups)
        for round_ in range(args.rounds):
            for name in order[round_ % len(order):] + order[: round_ % len(order)]:
                results[name].append(measure(client, setups[name], body, args.connections, args.seconds, args.warmup))
        report(results, args.rounds)
        for server in [*replicas, two_workers]:
            server.stop()  # graceful: the log is shipped before the schema is dropped


def report(results: dict[str, list[dict]], rounds: int) -> None:
    base = results[BASELINE]
    print(f"\n| setup | requests/s | p99 ms | throughput vs {BASELINE} | p99 vs {BASELINE} | errors |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        rps_ratio = statistics.median(runs[i]["rps"] / base[i]["rps"] for i in range(rounds))
        p99_ratio = statistics.median(runs[i]["p99_ms"] / base[i]["p99_ms"] for i in range(rounds))
        errors = sum(r["errors"] for r in runs)
        print(f"| {name} | {rps:,.0f} | {p99:.2f} | {rps_ratio:.2f}x | {p99_ratio:.2f}x | {errors} |")


if __name__ == "__main__":
    main()
