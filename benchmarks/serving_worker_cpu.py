"""The CPU one serving worker spends per request, prediction logging on against off, for one-row
`/predict` and 1,000-row `/predict/batch` requests, with no sockets and no load generator: the app
is called directly (ASGI) in a loop, in a process of its own per run, so the figures are the
worker's own and do not depend on where Linux puts a client.

What it shows: what logging costs the worker's process, all of it: the request's part (encoding its
rows, the write() to the local segment) and the shipping thread's (reading the segments back and
storing them in SQL), the latter also printed alone. A run's count ends once every row of its timed
requests is stored (a flush), and starts once the warm-up's are. Voluntary context switches per
request are printed beside them. The runs alternate off and on for a few rounds, and the medians
are reported; the ratio on/off is each round's, their median printed.

With `--instructions`, the worker runs under valgrind's callgrind instead (no timing): the
instructions it executes per request (all its threads) and its misses in the simulated
first-level instruction and data caches, logging off against on. Those counts do not move with
the machine's speed or with whatever else runs on it, where CPU time per request varies by several
µs from one run to the next here. Only the timed requests and their shipping are counted:
callgrind dumps and zeroes its counters whenever the worker reads its CPU time (`getrusage`),
which it does just before and just after them, so the start-up (imports, loading the model, the
warm-up), whose count varies from run to run, is left out.

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


def count_shipping_time(writer) -> list[float]:
    """Accumulates the CPU seconds of `writer`'s shipping (whichever thread ships) in the list returned."""
    spent, ship = [0.0], writer._ship

    def timed_ship(segment):
        started = time.thread_time()  # clock_gettime, not getrusage: callgrind does not dump here
        try:
            return ship(segment)
        finally:
            spent[0] += time.thread_time() - started

    writer._ship = timed_ship
    return spent


# The request each shape times: its path, its body's file (written by `main`) and its name here.
SHAPES = {"one": ("/predict", "one.json", "one-row"), "batch": ("/predict/batch", "batch.json", "1,000-row")}


def run_worker(folder: Path, logging: bool, shape: str, requests: int, warmup: int) -> dict:
    """In this process: the app with a store of its own, `warmup` requests, then `requests` timed."""
    os.environ.update({
        "RETRAIN_HOME": str(folder / "home"), "RETRAIN_MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "RETRAIN_PREDICTION_STORE_URL": f"sqlite:///{folder / f'predictions-{os.getpid()}.db'}",
        "RETRAIN_PREDICTION_LOGGING": str(logging).lower(),
        # However slowly this runs (under callgrind a request takes milliseconds), no poll of the
        # registry falls among the requests, and only full batches are shipped, as under
        # sustained load (a timed flush would ship a small batch every second).
        "RETRAIN_SERVING_POLL_SECONDS": "3600", "RETRAIN_STORE_FLUSH_SECONDS": "3600",
    })  # fmt: skip
    from serving.app import create_app

    path, body_file, _ = SHAPES[shape]
    body = (folder / body_file).read_bytes()
    app = create_app()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
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
                    raise RuntimeError(f"{path} answered {status}")
            store = app.state.store
            store.flush()  # the warm-up's rows stored: the timed requests pay only for their own
            shipping = count_shipping_time(store.writer)
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(requests):
                await call()
            store.flush()  # what the timed requests logged, stored, and counted
            after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
        return {
            "worker_us": ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / requests * 1e6,
            "wall_us": elapsed / requests * 1e6,
            "switches": (after.ru_nvcsw - before.ru_nvcsw) / requests,
            "shipping_us": shipping[0] / requests * 1e6,
        }

    return asyncio.run(main())


# Callgrind's events (with its cache simulation) and what this prints. The last-level cache's
# misses per request are a handful either way: not printed.
CALLGRIND_EVENTS = {"Ir": "instructions", "I1mr": "instruction cache (L1) misses",
                    "D1mr+D1mw": "data cache (L1) misses"}  # fmt: skip


def worker_command(folder: Path, mode: str, shape: str, requests: int, warmup: int) -> list[str]:
    return [sys.executable, __file__, "--worker", str(folder), mode, shape, str(requests), str(warmup)]


def callgrind_counts(folder: Path, mode: str, shape: str, requests: int, warmup: int) -> dict[str, int]:
    """One worker run under callgrind: the counts of its timed requests alone."""
    out = folder / f"callgrind-{shape}-{mode}"
    command = ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--dump-before=getrusage",
               f"--callgrind-out-file={out}", *worker_command(folder, mode, shape, requests, warmup)]  # fmt: skip
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


def instructions(folder: Path, runs: dict[str, tuple[int, int]]) -> None:
    """Per request of each shape, logging off against on: the runs two at a time."""
    jobs = [(shape, mode) for shape in runs for mode in ("off", "on")]
    print(f"{len(jobs)} runs under callgrind, two at a time...", flush=True)
    with ThreadPoolExecutor(2) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: callgrind_counts(folder, job[1], job[0], *runs[job[0]]), jobs),
                          strict=True))  # fmt: skip
    for shape, (requests, _) in runs.items():
        print(f"\nper {SHAPES[shape][2]} request ({requests} counted; callgrind's simulated caches):"
              f"\n  {'':32s} {'off':>12s} {'on':>12s}   on/off")
        for key, name in CALLGRIND_EVENTS.items():
            off, on = (counts[shape, mode][key] / requests for mode in ("off", "on"))
            print(f"  {name:32s} {off:12,.0f} {on:12,.0f}   {on / off:.3f}")


def timed(folder: Path, runs: dict[str, tuple[int, int]], rounds: int) -> None:
    """CPU per request of each shape, logging off against on, alternating for `rounds` rounds."""
    for shape, (requests, warmup) in runs.items():
        results: dict[str, list[dict]] = {"off": [], "on": []}
        ratios = []
        for round_ in range(rounds):
            for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                command = worker_command(folder, mode, shape, requests, warmup)
                done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[mode].append(result)
                print(f"  {shape}, round {round_ + 1}, logging {mode:3s}: worker {result['worker_us']:8.1f} µs/request "
                      f"(wall {result['wall_us']:8.1f}), {result['switches']:.3f} voluntary switches/request, "
                      f"shipping {result['shipping_us']:7.1f} µs/request", flush=True)  # fmt: skip
            ratios.append(results["on"][-1]["worker_us"] / results["off"][-1]["worker_us"])

        def median(mode: str, key: str) -> float:
            return statistics.median(result[key] for result in results[mode])

        off, on = median("off", "worker_us"), median("on", "worker_us")
        print(f"\nmedians over {rounds} rounds, {requests} {SHAPES[shape][2]} requests each:")
        print(f"  worker CPU per request: logging off {off:.1f} µs, on {on:.1f} µs: on/off "
              f"{statistics.median(ratios):.3f} (+{on - off:.1f} µs)")  # fmt: skip
        print(f"  of which shipping (the log's thread): {median('on', 'shipping_us'):.1f} µs")
        print(f"  voluntary switches per request: off {median('off', 'switches'):.3f}, on {median('on', 'switches'):.3f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, help="timed one-row requests per run (default 30,000; 2,000 with --instructions)")
    parser.add_argument("--batch-requests", type=int, help="timed 1,000-row requests per run (default 300; 20 with --instructions)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--worker", nargs=5, metavar=("FOLDER", "on|off", "one|batch", "REQUESTS", "WARMUP"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.worker:
        folder, mode, shape, requests, warmup = args.worker
        print(json.dumps(run_worker(Path(folder), mode == "on", shape, int(requests), int(warmup))))
        return

    if args.instructions and not shutil.which("valgrind"):
        parser.error("--instructions needs valgrind")
    runs = {"one": (args.requests or (2_000 if args.instructions else 30_000), 2_000),
            "batch": (args.batch_requests or (20 if args.instructions else 300), 5 if args.instructions else 20)}
    bench = load_serving_benchmark()
    folder = Path(tempfile.mkdtemp(prefix="worker-cpu-"))
    print("training and registering the model (365-day window)...", flush=True)
    spec, _, predictor, holdout = bench.register_model(folder, 365)
    one, _, batch, _ = bench.request_bodies(spec, predictor, holdout)
    (folder / "one.json").write_bytes(one)
    (folder / "batch.json").write_bytes(batch)
    if args.instructions:
        instructions(folder, runs)
    else:
        timed(folder, runs, args.rounds)


if __name__ == "__main__":
    main()
