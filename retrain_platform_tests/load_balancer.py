"""HAProxy from Debian's `haproxy` package in front of serving replicas on loopback, configured by
the deployment's own deploy/haproxy.cfg (its replicas given as REPLICA_1..3): for
test_load_balanced.py and benchmarks/serving_scale.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from retrain_platform_tests.serving_fixtures import REPO_ROOT, free_port

PACKAGE = "haproxy"  # Debian's package: apt-get install -y haproxy
CONFIG = REPO_ROOT / "deploy" / "haproxy.cfg"


def haproxy_binary() -> str | None:
    """Where Debian installs it (/usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


class HAProxy:
    """`haproxy -db -f deploy/haproxy.cfg` in a session of its own, balancing over `replicas`
    (host:port each, one to three), until `stop()`."""

    def __init__(self, folder: Path, replicas: list[str]):
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError(f"HAProxy is not installed (apt-get install -y {PACKAGE})")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        addresses = {f"REPLICA_{i}": replica for i, replica in enumerate(replicas, start=1)}
        env = {**os.environ, "BALANCER_BIND": f"127.0.0.1:{self.port}", **addresses}
        self.log = folder / f"haproxy-{self.port}.log"
        with self.log.open("wb") as sink:  # -db: in the foreground, no daemon to chase afterwards
            self.process = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], env=env, stdout=sink,
                                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self._wait_listening()

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haproxy did not start:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> HAProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
