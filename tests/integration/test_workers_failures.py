"""`--workers 2` under failure: what a restarted worker cannot run, a worker that keeps dying.

The agent runs as a real subprocess (tests/support/agent_process.py) in front of a real
http.server (tests/support/upstream.py). Bounded loops only, no timing asserts.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.certificates import make_certificate
from tests.support.process_stats import wait_gone
from tests.support.upstream import Upstream


@pytest.fixture
def workers_agent(tmp_path: Path, upstream: Upstream) -> Iterator[AgentProcess]:
    agent = AgentProcess(tmp_path / "agent", "http", str(upstream.port), "--workers", "2").start()
    try:
        yield agent
    finally:
        pids = agent.worker_pids()
        agent.kill()
        for pid in pids:
            wait_gone(pid)


def _wait_line(agent: AgentProcess, text: str, count: int = 1, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while sum(text in line for line in agent.lines) < count:
        assert time.monotonic() < deadline, "\n".join(agent.lines)
        time.sleep(0.05)


def _fresh_get(url: str, path: str) -> int:
    """One GET on a connection of its own (Connection: close); the status code."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_restarted_worker_that_cannot_run_one_tunnel_serves_the_others(
    workers_agent: AgentProcess, tmp_path: Path
) -> None:
    # A tls tunnel whose crt/key went away after it started (a certificate renewed or moved): the
    # main process keeps its loaded context, a restarted worker cannot load them. It must still
    # serve the other tunnels, not be started again and again.
    agent = workers_agent
    cert, key = make_certificate(tmp_path)
    tunnel = agent.start_tunnel(name="term", proto="tls", addr="1", crt=str(cert), key=str(key))
    cert.unlink()
    (killed,) = agent.worker_pids()
    os.kill(killed, signal.SIGKILL)
    _wait_line(agent, "started again")

    (fresh,) = agent.worker_pids()
    url = agent.public_urls["command_line"]
    statuses = [_fresh_get(url, f"/after-{n}") for n in range(60)]
    assert statuses == [200] * 60
    workers = agent.api("GET", "/api/tunnels/command_line").json()["metrics"]["workers"]
    assert {w["pid"]: w["http"] for w in workers}.get(fresh, 0) > 0  # it took its share
    assert agent.worker_pids() == [fresh]  # the same process: not restarted over and over
    assert sum("started again" in line for line in agent.lines) == 1, "\n".join(agent.lines)
    assert any("cannot run tunnel term" in line for line in agent.lines), "\n".join(agent.lines)
    # The main process still serves the tls tunnel with the certificate it loaded.
    with socket.create_connection(tuple(tunnel["public_url"].split("://")[1].rsplit(":", 1)), timeout=10):
        pass


def test_a_worker_that_keeps_dying_is_started_again_after_growing_pauses(workers_agent: AgentProcess) -> None:
    # Killed right after each start, as a crash that comes back would: each restart waits twice
    # as long as the one before (0.5 s, 1 s, ...), never a process start after another at once.
    agent = workers_agent
    for round_ in range(1, 4):
        (pid,) = agent.worker_pids()
        os.kill(pid, signal.SIGKILL)
        _wait_line(agent, "started again", count=round_)
    waits = [line.split("waiting ", 1)[1].split(" s", 1)[0] for line in agent.lines if "before starting it" in line]
    assert waits == ["0.5", "1", "2"], "\n".join(agent.lines)
    url = agent.public_urls["command_line"]
    assert [_fresh_get(url, f"/after-{n}") for n in range(20)] == [200] * 20


def test_sigterm_stores_the_final_state_of_every_exchange_it_cuts_short(tmp_path: Path, upstream: Upstream) -> None:
    # Requests still waiting on a slow service when the agent stops: every process cuts them
    # short, and each capture must say so (499, a reason), not stay "in progress" for ever.
    agent = AgentProcess(tmp_path, "http", str(upstream.port), "--workers", "2").start()
    clients: list[socket.socket] = []
    try:
        parts = urlsplit(agent.public_urls["command_line"])
        assert parts.hostname is not None and parts.port is not None
        workers = agent.worker_pids()
        for n in range(40):  # until the kernel has given the worker some (each a new connection)
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(f"GET /slow/30/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            clients.append(sock)
            per_process = agent.api("GET", "/api/tunnels/command_line").json()["metrics"]["workers"]
            if n >= 3 and all(w["conns"] > 0 for w in per_process):
                break
        # Stored in progress first (the API's list flushes every process's queue).
        listed = agent.api("GET", "/api/requests/http?limit=100").json()["requests"]
        assert len(listed) == len(clients)
        assert all(c["response"] is None for c in listed)
        assert agent.stop(signal.SIGTERM) == 0
        assert all(wait_gone(pid) for pid in workers)
    finally:
        for sock in clients:
            sock.close()
        agent.kill()

    again = AgentProcess(tmp_path).start()
    try:
        stored = again.api("GET", "/api/requests/http?limit=100").json()["requests"]
    finally:
        again.stop()
    assert len(stored) == len(clients)
    finals = [(c["request"]["uri"], (c["response"] or {}).get("status_code"), c["incomplete_reason"]) for c in stored]
    assert all(status == 499 and reason for _, status, reason in finals), finals


def test_a_hung_worker_is_ended_and_started_again(workers_agent: AgentProcess) -> None:
    # A stopped process keeps its share of the port's connections (they would wait for ever):
    # the main process notices it answers nothing, kills it and starts a fresh one.
    agent = workers_agent
    (hung,) = agent.worker_pids()
    os.kill(hung, signal.SIGSTOP)
    _wait_line(agent, "did not answer")
    _wait_line(agent, "started again")
    assert wait_gone(hung)
    url = agent.public_urls["command_line"]
    assert [_fresh_get(url, f"/after-{n}") for n in range(20)] == [200] * 20
