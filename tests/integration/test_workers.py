"""`--workers 2` end to end: two engine processes behind one port, one database, one API.

The agent runs as a real subprocess (tests/support/agent_process.py) in front of a real
http.server (tests/support/upstream.py). Bounded loops only, no timing asserts. Run against the
agent's own SQLite and in-memory layer, and (marked `services`) against PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.process_stats import alive, wait_gone
from tests.support.upstream import Upstream

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["sqlite", pytest.param("services", marks=pytest.mark.services)])
def backend_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """{} for the agent's own SQLite and in-memory layer; or a fresh PostgreSQL database and Redis."""
    if request.param == "sqlite":
        yield {}
        return
    import psycopg

    admin = psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5)
    name = f"agent_workers_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": urlunsplit(urlsplit(DATABASE_URL)._replace(path="/" + name)), "REDIS_URL": REDIS_URL}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def workers_agent(tmp_path: Path, upstream: Upstream, backend_env: dict[str, str]) -> Iterator[AgentProcess]:
    agent = AgentProcess(tmp_path, "http", str(upstream.port), "--workers", "2", env=backend_env).start()
    try:
        yield agent
    finally:
        workers = agent.worker_pids()  # asked before the kill: a killed agent answers nothing
        agent.kill()
        for pid in workers:
            wait_gone(pid)


def _tunnel(agent: AgentProcess) -> dict:
    response = agent.api("GET", "/api/tunnels/command_line")
    assert response.status_code == 200, response.text
    return response.json()


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _fresh_get(url: str, path: str) -> int:
    """One GET on a connection of its own (Connection: close); the status code."""
    with socket.create_connection(_address(url), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def _all_captures(agent: AgentProcess) -> list[dict]:
    agent.api("GET", "/api/requests/http?limit=1")  # the API flushes the pending captures first
    return agent.api("GET", "/api/requests/http?limit=10000").json()["requests"]


def _traffic(url: str, *, fresh_clients: int, keepalive_clients: int, each: int) -> tuple[list[str], list[int]]:
    """Several clients at once: some open a connection per request, some keep one alive.
    Returns (every path sent, every status received)."""
    paths: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def fresh(client: int) -> None:
        for n in range(each):
            path = f"/fresh-{client}-{n}"
            status = _fresh_get(url, path)
            with lock:
                paths.append(path)
                statuses.append(status)

    def keepalive(client: int) -> None:
        with requests.Session() as session:
            for n in range(each):
                path = f"/kept-{client}-{n}"
                status = session.get(url + path, timeout=10).status_code
                with lock:
                    paths.append(path)
                    statuses.append(status)

    threads = [threading.Thread(target=fresh, args=(c,)) for c in range(fresh_clients)]
    threads += [threading.Thread(target=keepalive, args=(c,)) for c in range(keepalive_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return paths, statuses


def _wait_captures(agent: AgentProcess, count: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        found = _all_captures(agent)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_two_workers_answer_capture_and_count_every_request_once(workers_agent: AgentProcess) -> None:
    agent = workers_agent
    url = agent.public_urls["command_line"]
    paths, statuses = _traffic(url, fresh_clients=4, keepalive_clients=2, each=40)

    assert len(paths) == 240
    assert statuses == [200] * 240
    captures = _all_captures(agent)  # no waiting: the list stores every process's queue first
    uris = sorted(c["request"]["uri"] for c in captures)
    assert uris == sorted(paths)  # each request captured exactly once, none lost
    assert len({c["id"] for c in captures}) == 240
    assert all(c["response"]["status_code"] == 200 for c in captures)

    metrics = _tunnel(agent)["metrics"]
    assert metrics["http"]["count"] == 240
    assert metrics["conns"]["count"] == 4 * 40 + 2
    per_process = metrics["workers"]
    assert len(per_process) == 2
    assert agent.proc is not None
    assert {w["pid"] for w in per_process} == {agent.proc.pid, *agent.worker_pids()}
    assert sum(w["http"] for w in per_process) == 240
    assert all(w["conns"] > 0 for w in per_process)  # the kernel gave both processes connections


def test_a_stop_through_the_api_closes_the_port_in_every_worker(workers_agent: AgentProcess) -> None:
    agent = workers_agent
    url = agent.public_urls["command_line"]
    assert _fresh_get(url, "/before") == 200

    assert agent.api("DELETE", "/api/tunnels/command_line").status_code == 204

    refused = 0
    for _ in range(40):  # SO_REUSEPORT would hand some of these to a worker still listening
        try:
            socket.create_connection(_address(url), timeout=5).close()
        except ConnectionRefusedError:
            refused += 1
    assert refused == 40


def test_a_killed_worker_is_started_again_and_the_tunnel_serves(workers_agent: AgentProcess) -> None:
    agent = workers_agent
    url = agent.public_urls["command_line"]
    (killed,) = agent.worker_pids()
    os.kill(killed, signal.SIGKILL)
    assert wait_gone(killed)

    deadline = time.monotonic() + 60
    while not any("started again" in line for line in agent.lines):
        assert time.monotonic() < deadline, "\n".join(agent.lines)
        time.sleep(0.1)
    (fresh,) = agent.worker_pids()
    assert fresh != killed

    statuses = [_fresh_get(url, f"/after-{n}") for n in range(60)]
    assert statuses == [200] * 60
    per_process = {w["pid"]: w for w in _tunnel(agent)["metrics"]["workers"]}
    assert per_process[fresh]["http"] > 0  # the new worker took connections on the same port
    assert len(_wait_captures(agent, 60)) >= 60


def test_sigterm_flushes_every_worker_capture_and_leaves_no_process(
    tmp_path: Path, upstream: Upstream, backend_env: dict[str, str]
) -> None:
    agent = AgentProcess(tmp_path, "http", str(upstream.port), "--workers", "2", env=backend_env).start()
    try:
        url = agent.public_urls["command_line"]
        workers = agent.worker_pids()
        assert len(workers) == 1
        paths, statuses = _traffic(url, fresh_clients=2, keepalive_clients=0, each=30)
        assert statuses == [200] * 60
        assert agent.stop(signal.SIGTERM) == 0  # no API call first: the pending captures flush on the way out
        assert all(wait_gone(pid) for pid in workers)
    finally:
        agent.kill()

    again = AgentProcess(tmp_path, env=backend_env).start()
    try:
        uris = sorted(c["request"]["uri"] for c in _all_captures(again))
        assert uris == sorted(paths), (sorted(set(paths) - set(uris)), "\n".join(agent.lines))
    finally:
        again.stop()


def test_workers_exit_when_the_main_process_is_killed(tmp_path: Path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path, "http", str(upstream.port), "--workers", "3").start()
    workers = agent.worker_pids()
    assert len(workers) == 2
    agent.kill()  # SIGKILL: no orderly close; the workers see their channel end
    assert all(wait_gone(pid) for pid in workers)


def test_a_second_agent_with_workers_is_refused_a_port_the_first_one_holds(
    tmp_path: Path, upstream: Upstream, workers_agent: AgentProcess
) -> None:
    # Both bind with SO_REUSEPORT: without the main process's free-port check the kernel would let
    # the second one in and hand it half the first one's connections.
    port = _address(workers_agent.public_urls["command_line"])[1]
    second = AgentProcess(tmp_path / "second", "--workers", "2").start()
    try:
        response = second.api("POST", "/api/tunnels", {"name": "t", "proto": "http", "addr": str(upstream.port),
                                                       "url": f"http://127.0.0.1:{port}"})  # fmt: skip
        assert response.status_code == 502, response.text
        assert "address already in use" in response.text.lower()
        statuses = [_fresh_get(workers_agent.public_urls["command_line"], f"/still-{n}") for n in range(20)]
        assert statuses == [200] * 20
        assert len(_all_captures(second)) == 0
    finally:
        second.stop()


def _labels(url: str, count: int) -> set[str]:
    """The x-policy header of `count` requests, each on a connection of its own."""
    import http.client

    labels = set()
    for n in range(count):
        connection = http.client.HTTPConnection(url.split("://")[1], timeout=10)
        connection.request("GET", f"/p{n}", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        labels.add(response.headers["x-policy"])
        connection.close()
    return labels


@pytest.mark.parametrize("kind", ["service", "file"])
def test_every_worker_swaps_the_policy_of_an_endpoint_put(
    tmp_path: Path, upstream: Upstream, workers_agent: AgentProcess, kind: str
) -> None:
    agent = workers_agent
    for n in range(30):
        (tmp_path / f"p{n}").write_text("page")
    target = str(upstream.port) if kind == "service" else f"file://{tmp_path}"

    def put(label: str) -> str:
        policy = (
            "on_http_response:\n  - actions:\n      - type: add-headers\n"
            f"        config:\n          headers:\n            x-policy: {label}\n"
        )
        response = agent.api("PUT", "/api/endpoints/labelled", {"upstream": {"url": target}, "traffic_policy": policy})
        assert response.status_code in (200, 201), response.text
        return str(response.json()["url"])

    url = put("one")
    assert _labels(url, 30) == {"one"}
    assert put("two") == url
    assert _labels(url, 30) == {"two"}  # whichever process took the connection
    per_process = _tunnel_named(agent, "labelled")["metrics"]["workers"]
    assert all(w["http"] > 0 for w in per_process)


def _tunnel_named(agent: AgentProcess, name: str) -> dict:
    response = agent.api("GET", f"/api/tunnels/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_tcp_tunnel_started_through_the_api_runs_in_every_process(
    upstream: Upstream, workers_agent: AgentProcess
) -> None:
    agent = workers_agent
    started = agent.start_tunnel(name="raw", proto="tcp", addr=str(upstream.port))
    url = "http://" + started["public_url"].removeprefix("tcp://")
    assert [_fresh_get(url, f"/tcp-{n}") for n in range(40)] == [200] * 40
    per_process = _tunnel_named(agent, "raw")["metrics"]["workers"]
    assert len(per_process) == 2 and all(w["conns"] > 0 for w in per_process)
    assert sum(w["conns"] for w in per_process) == 40


def test_a_workers_log_lines_reach_the_agents_log(workers_agent: AgentProcess) -> None:
    agent = workers_agent
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    started = agent.start_tunnel(name="dead", proto="tcp", addr=str(dead_port))
    address = _address("tcp://" + started["public_url"].removeprefix("tcp://"))
    for _ in range(40):  # each dial fails, in whichever process took the connection
        with socket.create_connection(address, timeout=10) as sock:
            sock.settimeout(10)
            assert sock.recv(1) == b""
    deadline = time.monotonic() + 10
    while not any("worker 1 (pid" in line and "dial" in line for line in agent.lines):
        assert time.monotonic() < deadline, "\n".join(agent.lines)
        time.sleep(0.05)


def _worker_processes_of(data_dir: Path) -> list[int]:
    """Live worker processes started for the agent using `data_dir` (found by their environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"agentapi.workers.worker_main" not in (entry / "cmdline").read_bytes():
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"AGENT_DATA_DIR={data_dir}".encode() in environ and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_stop_while_a_worker_is_being_started_again_leaves_no_process(tmp_path: Path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path, "http", str(upstream.port), "--workers", "2").start()
    try:
        (worker,) = agent.worker_pids()
        os.kill(worker, signal.SIGKILL)
        time.sleep(0.3)  # the supervisor is starting a new one (about a second of imports)
        assert agent.stop(signal.SIGTERM) == 0
    finally:
        agent.kill()
    deadline = time.monotonic() + 15
    while _worker_processes_of(tmp_path):
        assert time.monotonic() < deadline, _worker_processes_of(tmp_path)
        time.sleep(0.1)
