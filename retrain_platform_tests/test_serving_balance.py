"""The connection balancer's decisions, on a real shared table (a mapped file) with real peer
processes; test_serving_http runs it in real uvicorn workers."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import threading
import time

import pytest

from serving.balancer import ConnectionBalancer, WorkerTable, supervisor_table


async def ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def call(balancer: ConnectionBalancer, client_port: int) -> dict:
    """One request from 127.0.0.1:client_port; returns the response's headers."""
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "client": ("127.0.0.1", client_port), "server": ("127.0.0.1", 8000)}
    asyncio.run(balancer(scope, receive, send))
    return dict(sent[0]["headers"])


@pytest.fixture
def peer_pid():
    """A live process standing for another worker."""
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def balancer_with_peer(tmp_path, peer_pid: int, peer_connections: int) -> tuple[ConnectionBalancer, WorkerTable]:
    path = tmp_path / "workers"
    balancer = ConnectionBalancer(ok_app)
    balancer._table = WorkerTable(path)
    peer = WorkerTable(path, pid=peer_pid)
    peer.publish(peer_connections)
    return balancer, peer


def serve_round(balancer: ConnectionBalancer, ports: list[int], peer: WorkerTable | None = None) -> list[bool]:
    """Each client sends one request, the worker checking its share before each; which were closed.
    With `peer`, a closed client reconnects to that worker (the idle one, as `accept` tends to)."""
    closed = []
    for port in ports:
        balancer._next_check = 0.0  # a check on every request, rather than every PERIOD seconds
        closed.append(call(balancer, port).get(b"connection") == b"close")
        if closed[-1] and peer is not None:
            peer.publish(peer.count() + 1)
    return closed


def test_a_worker_with_every_connection_closes_them_until_even(tmp_path, peer_pid):
    balancer, peer = balancer_with_peer(tmp_path, peer_pid, peer_connections=0)
    for port in (1001, 1002, 1003, 1004):
        call(balancer, port)
    # 4 against 0: one moves; 3 against 1 is still two apart: one more; 2 against 2 is even.
    closed = serve_round(balancer, [1001, 1002, 1003, 1004, 1003, 1004], peer)
    assert closed == [True, True, False, False, False, False]
    assert balancer.closed == 2
    assert balancer._table.peers() == [2]


def test_workers_within_one_connection_of_each_other_close_nothing(tmp_path, peer_pid):
    balancer, _ = balancer_with_peer(tmp_path, peer_pid, peer_connections=2)
    closed = serve_round(balancer, [1001, 1002, 1003, 1001, 1002, 1003])
    assert not any(closed)


def test_a_dead_worker_is_no_peer(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    balancer, _ = balancer_with_peer(tmp_path, dead.pid, peer_connections=0)
    assert balancer._table.peers() == []
    assert not any(serve_round(balancer, [1001, 1002, 1003, 1004]))


def test_the_last_worker_out_removes_the_table(tmp_path, peer_pid):
    path = tmp_path / "workers"
    mine, peer = WorkerTable(path), WorkerTable(path, pid=peer_pid)
    assert mine.offset != peer.offset
    peer.release()
    assert path.exists()
    mine.release()
    assert not path.exists()


def test_a_worker_that_locks_a_removed_table_claims_in_the_one_at_the_path(tmp_path, peer_pid):
    """A worker starts while the last one out removes the table (uvicorn's reload does both at
    once): it waits for the lock on the file it opened, which is gone once it gets the lock. It
    must claim its slot in the file at the path, where the next worker looks, not in that one."""
    path = tmp_path / "workers"
    WorkerTable(path, pid=peer_pid)
    leaving = os.open(path, os.O_RDWR)
    fcntl.flock(leaving, fcntl.LOCK_EX)  # the last worker out, deciding to remove the table
    started: list[WorkerTable] = []
    starting = threading.Thread(target=lambda: started.append(WorkerTable(path)))
    starting.start()
    time.sleep(0.3)  # it has opened the file and waits for the lock
    path.unlink()
    os.close(leaving)
    starting.join(timeout=10)
    assert started, "the starting worker never got its slot"
    later = subprocess.Popen(["sleep", "60"])
    try:
        assert WorkerTable(path, pid=later.pid).peers() == [0]  # the starting worker, none else
    finally:
        later.kill()
        later.wait()


def test_a_single_process_server_has_no_table():
    # pytest runs here as uvicorn does with one worker: no supervisor above it.
    assert supervisor_table() is None
