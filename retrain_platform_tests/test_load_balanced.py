"""Serving past one machine, on loopback: three serving processes (`uvicorn serving.app:app`, one
worker each, a home of their own as on separate machines) behind HAProxy configured by
deploy/haproxy.cfg, sharing one MLflow server and the prediction log on PostgreSQL.

Needs Debian's `haproxy` package (`apt-get install -y haproxy`; .ci/run installs it) and the test
PostgreSQL; each is skipped with its reason where absent.

The log ships late (a 60 s interval, a batch larger than the test): what a replica answered is in
its local segments until it stops or restarts, so a killed replica's answers reach PostgreSQL only
through the replay on its restart.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import cycle
from typing import NamedTuple

import httpx
import pytest

from retrain_platform.store import PredictionStore
from retrain_platform_tests.load_balancer import PACKAGE, HAProxy, haproxy_binary
from retrain_platform_tests.serving_fixtures import ServingProcess, postgres_store_url


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(haproxy_binary() is None, reason=f"needs HAProxy: apt-get install -y {PACKAGE}"),
]

REPLICAS = 3
POLL_SECONDS = 1.0  # RETRAIN_SERVING_POLL_SECONDS of every replica
LATE_SHIPPING = {"RETRAIN_STORE_FLUSH_SECONDS": "60", "RETRAIN_STORE_BATCH_SIZE": "1000000"}
CLIENTS = 4  # connections sending requests back to back through the balancer


@pytest.fixture(scope="module")
def store_url(postgres_url):
    with postgres_store_url(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, mlflow_server, store_url):
    """Three replicas, started one after another (each waits for /health: a model loaded)."""
    started: list[ServingProcess] = []
    try:
        for i in range(1, REPLICAS + 1):
            folder = tmp_path_factory.mktemp(f"replica{i}")
            env = {"RETRAIN_HOME": str(folder / "home"), "RETRAIN_MLFLOW_TRACKING_URI": mlflow_server.url,
                   "RETRAIN_PREDICTION_STORE_URL": store_url, "RETRAIN_SERVING_POLL_SECONDS": str(POLL_SECONDS),
                   "UVICORN_ACCESS_LOG": "false", **LATE_SHIPPING}  # fmt: skip
            started.append(ServingProcess(folder, workers=1, env=env))
            started[-1].start()
        yield dict(zip(names(), started, strict=True))
    finally:
        for replica in started:
            if replica.process is not None and replica.process.poll() is None:
                replica.stop()


@pytest.fixture(scope="module")
def balancer(tmp_path_factory, replicas):
    with HAProxy(tmp_path_factory.mktemp("haproxy"), [f"127.0.0.1:{r.port}" for r in replicas.values()]) as running:
        yield running


def names() -> list[str]:
    """The replicas as deploy/haproxy.cfg names them (its X-Served-By header)."""
    return [f"serving{i}" for i in range(1, REPLICAS + 1)]


class Answer(NamedTuple):
    """One 200: who answered, with which version, and when the request was sent and its answer
    received (time.monotonic(), on the client)."""

    replica: str
    version: str
    prediction_id: str
    sent: float
    received: float


class Traffic:
    """Clients posting real rows through the balancer back to back until stopped. Every answer is
    kept as an Answer; anything but a 200 is a failure. The list is in the order the client
    threads recorded their answers, which is not the order a replica produced them: order by
    `sent` and `received`."""

    def __init__(self, url: str, rows: list[dict], clients: int = CLIENTS):
        self.answers: list[Answer] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(url, rows[i::clients])) for i in range(clients)]

    def _send(self, url: str, rows: list[dict]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for row in cycle(rows):
                if self._stop.is_set():
                    return
                sent = time.monotonic()
                try:
                    response = http.post("/predict", json=row)
                    received = time.monotonic()
                except httpx.HTTPError as err:
                    self.failures.append(repr(err))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                body = response.json()
                self.answers.append(Answer(response.headers["x-served-by"], body["model_version"],
                                           body["prediction_id"], sent, received))  # fmt: skip

    def answered_by(self, replica: str) -> list[Answer]:
        """Each answer from `replica`, in the order the requests were sent."""
        return sorted((a for a in list(self.answers) if a.replica == replica), key=lambda a: a.sent)

    def latest_version(self, replica: str) -> str | None:
        """The version of the answer to the last request sent to `replica` that was answered."""
        answers = self.answered_by(replica)
        return answers[-1].version if answers else None

    def wait(self, condition, what: str, timeout: float = 120.0) -> None:
        """Waits for a condition of the test's making; the timeout only keeps a broken stack from
        hanging the suite."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; failures: {self.failures[:5]}"
            time.sleep(0.02)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


class RegistryChecks:
    """Samples each replica's /health straight (not through the balancer): which registry check,
    by its start time, led to which version being served."""

    def __init__(self, replicas: dict[str, ServingProcess]):
        self.samples: dict[str, list[tuple[datetime, str]]] = {name: [] for name in replicas}
        self._urls = {name: replica.url for name, replica in replicas.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.wait(0.05):  # far more often than a poll: every check is seen
                for name, url in self._urls.items():
                    health = http.get(f"{url}/health").json()
                    checked = datetime.fromisoformat(health["last_registry_check_at"])
                    self.samples[name].append((checked, health["model_version"]))

    def __enter__(self) -> RegistryChecks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def stored_ids(store_url: str) -> list[str]:
    store = PredictionStore(store_url)
    try:
        return list(store.predictions_since(datetime.now(UTC) - timedelta(days=1))["prediction_id"])
    finally:
        store.close()


def stale_answers(answers: list[Answer], before: str, after: str) -> list[Answer]:
    """One replica's answers that break a clean switch from `before` to `after`: any version but
    those two, and any `before` answer to a request sent after the replica's first `after` answer
    was received (that request reached the replica after it had swapped). Requests in flight
    across the swap may carry either version: the clients' threads record answers out of the
    replica's order, so only send and receive times order them."""
    swapped = min((a.received for a in answers if a.version == after), default=float("inf"))
    return [a for a in answers if a.version not in (before, after) or (a.version == before and a.sent > swapped)]


def test_a_promotion_under_load_fails_no_request_and_each_replica_takes_it_at_its_next_poll(
    balancer, replicas, models
):
    """While clients send requests through the balancer, the production alias moves. No request
    fails; each replica swaps the new version in at the first registry check it begins after the
    move (it polls every POLL_SECONDS, so within one poll interval, give or take the check itself)
    and from then on answers only with it: no request sent after its first answer with the new
    version was received gets the old one."""
    before = models.registry.production_version()
    after = next(v for v in models.versions if v != before)
    with Traffic(balancer.url, models.rows) as traffic, RegistryChecks(replicas) as checks:
        traffic.wait(lambda: all(len(traffic.answered_by(n)) >= 20 for n in names()), "every replica answering")
        models.registry.promote(after, expected_current=before)
        moved = datetime.now(UTC)
        traffic.wait(lambda: all(traffic.latest_version(n) == after for n in names()),
                     f"every replica answering with version {after}")  # fmt: skip
        counts = {n: len(traffic.answered_by(n)) for n in names()}
        traffic.wait(lambda: all(len(traffic.answered_by(n)) >= counts[n] + 20 for n in names()), "more traffic")
    assert traffic.failures == []
    for name in names():
        answers = traffic.answered_by(name)
        assert {a.version for a in answers} == {before, after}, name  # it answered with both
        assert stale_answers(answers, before, after) == [], name  # one clean switch, nothing old after it
        samples = checks.samples[name]
        loaded_by = next(checked for checked, version in samples if version == after)
        # No check began after the move and left the old version in place: the first did the swap.
        missed = {checked for checked, version in samples if version == before and moved < checked < loaded_by}
        assert missed == set(), (name, moved, loaded_by, sorted(missed))


def test_a_replica_killed_under_load_costs_no_request_and_its_answers_are_stored_after_its_restart(
    balancer, replicas, models, store_url
):
    """SIGKILL of one replica's process while clients send requests through the balancer: the
    balancer sends its requests to the others (a request cut off before its answer began is retried
    there); only an answer the kill cut off midway fails. Its answered predictions were only in its local segments; after its
    restart (same home, same port) every one of them is in PostgreSQL, and it serves again."""
    victim_name = names()[1]
    victim = replicas[victim_name]
    with Traffic(balancer.url, models.rows) as traffic:
        traffic.wait(lambda: all(len(traffic.answered_by(n)) >= 50 for n in names()), "every replica answering")
        victim.kill()
        answered_before_kill = {a.prediction_id for a in traffic.answered_by(victim_name)}
        total = len(traffic.answers)
        traffic.wait(lambda: len(traffic.answers) >= total + 300, "the others answering in its place")
        assert answered_before_kill.isdisjoint(stored_ids(store_url))  # in its segments only
        victim.start()  # replays its segments before /health says ready
        assert answered_before_kill <= set(stored_ids(store_url))
        seen = len(traffic.answered_by(victim_name))
        traffic.wait(lambda: len(traffic.answered_by(victim_name)) > seen + 20, "the restarted replica answering")
    # An answer the kill cut off midway cannot be resent: the balancer had already passed its headers
    # on. At most one such request per client; every other request was sent elsewhere.
    assert len(traffic.failures) <= CLIENTS, traffic.failures
    assert all("RemoteProtocolError" in failure for failure in traffic.failures), traffic.failures
    for replica in replicas.values():
        replica.stop()  # graceful: each ships what it holds (the last test of the module to use them)
    stored = stored_ids(store_url)
    assert len(stored) == len(set(stored))  # none twice
    assert {a.prediction_id for a in traffic.answers} <= set(stored)  # none answered is lost, on any replica
