"""TCP tunnels: bytes piped both ways, connections counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.agent_process import AgentProcess
from tests.support.echo import echo_server


@pytest.fixture
def echo_port() -> Iterator[int]:
    with echo_server() as port:
        yield port


def connect(public_url: str) -> socket.socket:
    host, port = public_url.removeprefix("tcp://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_bytes_flow_both_ways_and_connections_are_counted(agent: AgentProcess, echo_port: int) -> None:
    tunnel = agent.start_tunnel(name="echo", proto="tcp", addr=str(echo_port))
    assert tunnel["public_url"].startswith("tcp://127.0.0.1:")
    assert tunnel["config"] == {"addr": f"localhost:{echo_port}", "inspect": False}
    payload = bytes(range(256)) * 4096  # 1 MiB
    with connect(tunnel["public_url"]) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload) and (data := sock.recv(65536)):
            received += data
        sender.join()
        metrics = agent.api("GET", "/api/tunnels/echo").json()["metrics"]
        assert metrics["conns"]["gauge"] == 1
    assert bytes(received) == payload
    deadline = time.monotonic() + 5
    while agent.api("GET", "/api/tunnels/echo").json()["metrics"]["conns"]["gauge"] and time.monotonic() < deadline:
        time.sleep(0.05)
    metrics = agent.api("GET", "/api/tunnels/echo").json()["metrics"]
    assert metrics["conns"]["count"] == 1
    assert metrics["conns"]["gauge"] == 0
    assert metrics["conns"]["p50"] > 0  # the lifetime, in ns


def test_a_refused_local_service_closes_the_public_connection(agent: AgentProcess) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    tunnel = agent.start_tunnel(name="dead", proto="tcp", addr=str(dead_port))
    with connect(tunnel["public_url"]) as sock:
        assert sock.recv(10) == b""
    assert agent.api("GET", "/api/tunnels/dead").json()["metrics"]["conns"]["count"] == 0


def test_stopping_a_tunnel_closes_its_listener(agent: AgentProcess, echo_port: int) -> None:
    tunnel = agent.start_tunnel(name="gone", proto="tcp", addr=str(echo_port))
    assert agent.api("DELETE", "/api/tunnels/gone").status_code == 204
    with pytest.raises(ConnectionRefusedError):
        connect(tunnel["public_url"]).close()


def test_bytes_sent_and_half_closed_before_the_dial_completes_arrive(agent: AgentProcess, echo_port: int) -> None:
    tunnel = agent.start_tunnel(name="quick", proto="tcp", addr=str(echo_port))
    for _ in range(5):
        with connect(tunnel["public_url"]) as sock:
            sock.sendall(b"ping")
            sock.shutdown(socket.SHUT_WR)  # like `echo ping | nc host port`
            received = b""
            while data := sock.recv(100):
                received += data
        assert received == b"ping"


def test_a_service_that_speaks_first_is_heard_by_every_client(agent: AgentProcess) -> None:
    """SSH, SMTP and MySQL greet before the client says anything."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve() -> None:
        for _ in range(20):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                conn.recv(1)  # until the client leaves

    threading.Thread(target=serve, daemon=True).start()
    tunnel = agent.start_tunnel(name="ssh", proto="tcp", addr=str(listener.getsockname()[1]))
    for _ in range(20):
        with connect(tunnel["public_url"]) as sock:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                data = sock.recv(100)
                assert data, greeting
                greeting += data
            assert greeting == b"SSH-2.0-OpenSSH_9.6\r\n"
    listener.close()
