"""Sensor rounds on request: the replay drives the sensors' clock as it drives the event clock.

Dagster's sensor daemon evaluates every sensor on a loop of its own (at best every 5 s), so a
replay that waits for the sensors to look at each day waits for that loop. In a replay the daemon
runs `replay/daemon.py` instead, whose sensor loop evaluates every running sensor once each time
the replay asks: the replay writes the number of the round it asks for in `asked`, the daemon
writes it in `done` once every sensor of that round has ticked (and submitted the runs it asked
for). Two small files, so the two processes share nothing but the replay's home folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.05
# Sensors are declared with a minimum interval of 1 s (Dagster reads 0 as its 30 s default) and
# skip a tick that comes sooner: a round starts at least this long after the previous one ended.
ROUND_SPACING_SECONDS = 1.05


class SensorRounds:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _read(self, name: str) -> int:
        try:
            return int((self.folder / name).read_text() or 0)
        except (FileNotFoundError, ValueError):  # not written yet, or caught between write and rename
            return 0

    def _write(self, name: str, number: int) -> None:
        partial = self.folder / f".{name}.{os.getpid()}"
        partial.write_text(str(number))
        partial.replace(self.folder / name)  # atomic: the reader sees the old number or the new one

    # -- the replay's side ---------------------------------------------------------------------
    def run_one(self, timeout: float, check_alive: Callable[[], None]) -> None:
        """Ask for a round and wait until it is done: every sensor ticked after this call began."""
        asked = self._read("asked") + 1
        self._write("asked", asked)
        deadline = time.monotonic() + timeout
        while self._read("done") < asked:
            check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sensor daemon did not run round {asked} within {timeout} s")
            time.sleep(POLL_SECONDS)

    # -- the daemon's side ---------------------------------------------------------------------
    def wait_for_ask(self) -> Iterator[None]:
        """Yield while no round is asked for (the daemon's loop writes its heartbeat and sees a
        shutdown between yields); return the number asked for."""
        done = self._read("done")
        while (asked := self._read("asked")) <= done:
            yield None
            time.sleep(POLL_SECONDS)
        return asked

    def mark_done(self, number: int) -> None:
        self._write("done", number)
