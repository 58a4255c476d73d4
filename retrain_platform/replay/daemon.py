"""`dagster-daemon run`, with the sensor loop driven by the replay (see rounds.py).

    python -m retrain_platform.replay.daemon ROUNDS_FOLDER [dagster-daemon run options]

Every other daemon (the run queue, schedules, backfills) runs as in `dagster-daemon run`, and each
round is Dagster's own sensor iteration: the same ticks, cursors, run keys and run submission.
Only when an iteration starts changes: when the replay asks, instead of every 5 s. This reaches
into Dagster's sensor daemon module (its loop's pause and its iteration function), which is why
it is a replay tool and not how the platform runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .rounds import ROUND_SPACING_SECONDS, SensorRounds


def drive_sensors_by_rounds(rounds: SensorRounds) -> None:
    import dagster._daemon.sensor as sensor_daemon

    iteration = sensor_daemon.execute_sensor_iteration
    last_end = 0.0

    def on_request(*args, **kwargs):
        nonlocal last_end
        asked = yield from rounds.wait_for_ask()
        time.sleep(max(0.0, last_end + ROUND_SPACING_SECONDS - time.monotonic()))
        try:
            yield from iteration(*args, **kwargs)
        finally:  # a failed round is in the daemon's log; the replay goes on, as the daemon would
            last_end = time.monotonic()
            rounds.mark_done(asked)

    sensor_daemon.execute_sensor_iteration = on_request
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = 0  # the wait for the next ask is the loop's pause


def main(argv: list[str]) -> None:
    from dagster._daemon.cli import cli

    drive_sensors_by_rounds(SensorRounds(Path(argv[0])))
    cli(["run", *argv[1:]], obj={})


if __name__ == "__main__":
    main(sys.argv[1:])
