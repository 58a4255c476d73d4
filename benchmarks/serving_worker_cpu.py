"""The CPU one serving worker spends per one-row `/predict`, prediction logging on against off, with
no sockets and no load generator: the app is called directly (ASGI) in a loop, in a process of its
own per run, so the figures are the worker's own and do not depend on where Linux puts a client.

What it shows: what logging costs in the worker's process (encoding, queueing, handing batches to the
insert process, and whatever that does to the rest of the request's work) and, separately, the
insert process's CPU per request. Voluntary context switches per request are printed beside them:
a thread that wakes to take the interpreter shows there. The runs alternate off and on for a few
rounds, and the medians are reported; the ratio on/off is each round's, their median printed.

With `--instructions`, the worker runs under valgrind's callgrind instead (no timing): the
instructions it executes per request and its misses in the simulated first-level instruction and
data caches, logging off against on. Those counts do not move with the machine's speed or with
whatever else runs on it, where CPU time per request varies by several µs from one run to the next
here. Only the timed requests are counted: callgrind dumps and zeroes its counters whenever the
worker reads its CPU time (`getrusage`), which it does just before and just after them, so the
start-up (imports, loading the model, the warm-up), whose count varies from run to run, is
left out (this mode used to take the difference of runs of N and 2N requests, which still moved
by thousands of instructions per request). The insert process is not run under valgrind (its own
CPU is the other mode's figure).

    .venv/bin/python benchmarks/serving_worker_cpu.py [--requests 30000] [--rounds 3]
    .venv/bin/python benchmarks/serving_worker_cpu.py --instructions [--requests 2000]
"""

import argparse
import asyncio
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_serving_benchmark():
    """benchmarks/serving.py, for its model and request body (its name is the app package's)."""
    spec = importlib.util.spec_from_file_location("serving_benchmark", Path(__file__).with_name("serving.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def insert_process_seconds(store) -> float:
    """CPU time (user and system) the store's insert process has used; 0 without one."""
    child = store._insert_process._child if store._insert_process is not None else None
    return load_serving_benchmark().tree_cpu_seconds(child.pid) if child is not None else 0.0


def run_worker(folder: Path, logging: bool, requests: int, warmup: int = 2_000) -> dict:
    """In this process: the app with a store of its own, `warmup` requests, then `requests` timed."""
    os.environ.update({
        "RETRAIN_HOME": str(folder / "home"), "RETRAIN_MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "RETRAIN_PREDICTION_STORE_URL": f"sqlite:///{folder / f'predictions-{os.getpid()}.db'}",
        "RETRAIN_PREDICTION_LOGGING": str(logging).lower(),
        # However slowly this runs (under callgrind a request takes milliseconds), no poll of the
        # registry falls among the requests, and only full batches are handed on, as under
        # sustained load (a timed flush would write a small batch every second).
        "RETRAIN_SERVING_POLL_SECONDS": "3600", "RETRAIN_STORE_FLUSH_SECONDS": "3600",
    })  # fmt: skip
    from serving.app import create_app

    body = (folder / "one.json").read_bytes()
    app = create_app()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def call() -> int:
        status = []

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        return status[0]

    async def main() -> dict:
        async with app.router.lifespan_context(app):
            for _ in range(warmup):
                if (status := await call()) != 200:
                    raise RuntimeError(f"/predict answered {status}")
            store = app.state.store
            store.flush()  # the warm-up's rows stored: the timed requests pay only for their own
            inserted = insert_process_seconds(store)
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(requests):
                await call()
            after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
            store.flush()  # what the timed requests logged, stored
            inserted = insert_process_seconds(store) - inserted
        return {
            "worker_us": ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / requests * 1e6,
            "wall_us": elapsed / requests * 1e6,
            "switches": (after.ru_nvcsw - before.ru_nvcsw) / requests,
            "insert_us": inserted / requests * 1e6,
        }

    return asyncio.run(main())


# Callgrind's events (with its cache simulation) and what this prints. The last-level cache's
# misses per request are a handful either way: not printed.
CALLGRIND_EVENTS = {"Ir": "instructions", "I1mr": "instruction cache (L1) misses",
                    "D1mr+D1mw": "data cache (L1) misses"}  # fmt: skip


def callgrind_counts(folder: Path, mode: str, requests: int) -> dict[str, int]:
    """One worker run under callgrind: the counts of its timed requests alone."""
    out = folder / f"callgrind-{mode}"
    command = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--dump-before=getrusage",
               f"--callgrind-out-file={out}", sys.executable, __file__, "--worker", str(folder), mode,
               "--requests", str(requests)]  # fmt: skip
    # The same hashes in every run (set and dict layouts, and so the instructions, do not vary), and
    # no idle pool threads of numpy's BLAS or OpenMP spinning, whose counts depend on scheduling.
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO, env=env)
    # Dumps: .1 from the start to the first getrusage, .2 the timed requests, then what followed.
    dumps = sorted(folder.glob(f"{out.name}.*"), key=lambda path: int(path.suffix[1:]))
    if len(dumps) != 2:
        raise RuntimeError(f"callgrind dumped {len(dumps)} parts before the end, not 2: something else "
                           "called getrusage, and the timed requests cannot be told apart")  # fmt: skip
    text = dumps[1].read_text()
    events = re.search(r"^events: (.+)$", text, re.MULTILINE)[1].split()
    totals = dict(zip(events, map(int, re.search(r"^(?:summary|totals): (.+)$", text, re.MULTILINE)[1].split()),
                      strict=False))  # fmt: skip
    return {key: sum(totals[event] for event in key.split("+")) for key in CALLGRIND_EVENTS}


def instructions(folder: Path, requests: int) -> None:
    """Per request, logging off against on."""
    print(f"2 runs under callgrind ({requests} requests counted, logging off and on), side by side...", flush=True)
    with ThreadPoolExecutor(2) as pool:
        counts = dict(zip(("off", "on"), pool.map(lambda mode: callgrind_counts(folder, mode, requests), ("off", "on")),
                          strict=True))  # fmt: skip
    print(f"\nper one-row request (callgrind's simulated caches):\n  {'':32s} {'off':>10s} {'on':>10s}   on/off")
    for key, name in CALLGRIND_EVENTS.items():
        off, on = (counts[mode][key] / requests for mode in ("off", "on"))
        print(f"  {name:32s} {off:10,.0f} {on:10,.0f}   {on / off:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, help="timed requests per run (default 30,000; 2,000 with --instructions)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--worker", nargs=2, metavar=("FOLDER", "on|off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.requests = args.requests or (2_000 if args.instructions else 30_000)
    if args.worker:
        folder, mode = args.worker
        print(json.dumps(run_worker(Path(folder), mode == "on", args.requests)))
        return

    if args.instructions and not shutil.which("valgrind"):
        parser.error("--instructions needs valgrind")
    bench = load_serving_benchmark()
    folder = Path(tempfile.mkdtemp(prefix="worker-cpu-"))
    print("training and registering the model (365-day window)...", flush=True)
    spec, _, predictor, holdout = bench.register_model(folder, 365)
    (folder / "one.json").write_bytes(bench.request_bodies(spec, predictor, holdout)[0])
    if args.instructions:
        instructions(folder, args.requests)
        return
    results: dict[str, list[dict]] = {"off": [], "on": []}
    ratios = []
    for round_ in range(args.rounds):
        for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            command = [sys.executable, __file__, "--worker", str(folder), mode, "--requests", str(args.requests)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[mode].append(result)
            print(f"  round {round_ + 1}, logging {mode:3s}: worker {result['worker_us']:6.1f} µs/request "
                  f"(wall {result['wall_us']:6.1f}), {result['switches']:.3f} voluntary switches/request, "
                  f"insert process {result['insert_us']:5.1f} µs/request", flush=True)  # fmt: skip
        ratios.append(results["on"][-1]["worker_us"] / results["off"][-1]["worker_us"])

    def median(mode: str, key: str) -> float:
        return statistics.median(result[key] for result in results[mode])

    off, on = median("off", "worker_us"), median("on", "worker_us")
    print(f"\nmedians over {args.rounds} rounds, {args.requests} one-row requests each:")
    print(f"  worker CPU per request: logging off {off:.1f} µs, on {on:.1f} µs: on/off {statistics.median(ratios):.3f}"
          f" (+{on - off:.1f} µs)")  # fmt: skip
    print(f"  voluntary switches per request: off {median('off', 'switches'):.3f}, on {median('on', 'switches'):.3f}")
    print(f"  insert process CPU per request logged: {median('on', 'insert_us'):.1f} µs")


if __name__ == "__main__":
    main()
