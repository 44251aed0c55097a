"""Long exchanges: how long a local service may take to answer, globally and per tunnel.

`AGENT_UPSTREAM_TIMEOUT` (default 600 s, longer than ngrok's edge waits) is the wait for the
local service to start its answer; a tunnel's `response_timeout` (seconds or a Go duration) wins.
A response that has started streams on however long it takes (SSE). Short settings here (1 s
and 5 s) against a service that answers after 3 s: the outcome, never the elapsed time, is
asserted.
"""

from __future__ import annotations

import runpy
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, start_upstream

T = TypeVar("T")
SERVICE_DELAY = 3  # seconds the slow service takes: between the short (1 s) and long (5 s) settings


def captures(agent: AgentProcess, tunnel_name: str) -> list[dict]:
    response = agent.api("GET", "/api/requests/http", params={"tunnel_name": tunnel_name})
    return response.json()["requests"]


# Agents and the slow service are shared by the module (tunnel names differ per test).
@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("agent")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def short_default_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """An agent whose global wait is 1 s."""
    process = AgentProcess(tmp_path_factory.mktemp("short"), env={"AGENT_UPSTREAM_TIMEOUT": "1"}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = start_upstream()
    # The slow answers the agent gave up on (504) meet a closed socket: expected, not worth a traceback.
    server.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    yield server
    server.close()


def test_the_default_wait_is_at_least_ngrok_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_UPSTREAM_TIMEOUT", raising=False)
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path))
    settings = runpy.run_path(str(Path(__file__).resolve().parents[2] / "dashboard" / "settings.py"))
    # ngrok's edge has no response timeout and a 5-minute idle timeout (its HTTP endpoint limits).
    assert settings["AGENT_UPSTREAM_TIMEOUT"] >= 300


def test_a_slow_answer_within_the_tunnels_timeout_passes(agent: AgentProcess, upstream: Upstream) -> None:
    tunnel = agent.start_tunnel(name="slow", addr=str(upstream.port), response_timeout=5)
    response = requests.get(f"{tunnel['public_url']}/slow/{SERVICE_DELAY}", timeout=30)
    assert (response.status_code, response.content) == (200, b"slow")


def test_a_slow_answer_past_the_tunnels_timeout_is_504(agent: AgentProcess, upstream: Upstream) -> None:
    tunnel = agent.start_tunnel(name="hasty", addr=str(upstream.port), response_timeout="1s")
    response = requests.get(f"{tunnel['public_url']}/slow/{SERVICE_DELAY}", timeout=30)
    assert response.status_code == 504


def test_the_global_setting_applies_to_tunnels_without_their_own(
    short_default_agent: AgentProcess, upstream: Upstream
) -> None:
    tunnel = short_default_agent.start_tunnel(name="plain", addr=str(upstream.port))
    response = requests.get(f"{tunnel['public_url']}/slow/{SERVICE_DELAY}", timeout=30)
    assert response.status_code == 504


def test_a_tunnels_own_timeout_wins_over_the_global_one(short_default_agent: AgentProcess, upstream: Upstream) -> None:
    tunnel = short_default_agent.start_tunnel(name="patient", addr=str(upstream.port), response_timeout="5s")
    response = requests.post(f"{tunnel['public_url']}/slow/{SERVICE_DELAY}", data=b"webhook", timeout=30)
    assert (response.status_code, response.content) == (200, b"slow")


def test_an_endpoint_takes_response_timeout_too(short_default_agent: AgentProcess, upstream: Upstream) -> None:
    body = {"name": "hook", "upstream": {"url": f"http://localhost:{upstream.port}"}, "response_timeout": "5s"}
    endpoint = short_default_agent.api("POST", "/api/endpoints", body)
    assert endpoint.status_code == 201, endpoint.text
    response = requests.get(f"{endpoint.json()['url']}/slow/{SERVICE_DELAY}", timeout=30)
    assert response.status_code == 200


def test_a_replay_waits_as_long_as_its_tunnel(short_default_agent: AgentProcess, upstream: Upstream) -> None:
    tunnel = short_default_agent.start_tunnel(name="replayed", addr=str(upstream.port), response_timeout=5)
    requests.get(f"{tunnel['public_url']}/slow/{SERVICE_DELAY}", timeout=30)
    [original] = _wait_for(lambda: [c for c in captures(short_default_agent, "replayed") if c["response"]])
    assert short_default_agent.api("POST", "/api/requests/http", {"id": original["id"]}).status_code == 204
    replayed = [c for c in captures(short_default_agent, "replayed") if c["id"] != original["id"]]
    assert [c["response"]["status_code"] for c in replayed] == [200]


def test_the_config_file_takes_response_timeout(tmp_path: Path, upstream: Upstream) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text(
        "version: 2\n"
        "tunnels:\n"
        f"  patient:\n    proto: http\n    addr: {upstream.port}\n    response_timeout: 5s\n"
        f"  hasty:\n    proto: http\n    addr: {upstream.port}\n    response_timeout: 1\n"
    )
    agent = AgentProcess(tmp_path / "agent", "start", "--all", "--config", str(config)).start()
    try:
        patient = requests.get(f"{agent.public_urls['patient']}/slow/{SERVICE_DELAY}", timeout=30)
        hasty = requests.get(f"{agent.public_urls['hasty']}/slow/{SERVICE_DELAY}", timeout=30)
    finally:
        agent.stop()
    assert (patient.status_code, hasty.status_code) == (200, 504)


def test_a_bad_response_timeout_is_refused(agent: AgentProcess) -> None:
    for value in ("soon", 0, -5, True, "25h"):
        response = agent.api("POST", "/api/tunnels", {"name": "x", "addr": "80", "response_timeout": value})
        assert response.status_code == 400, (value, response.text)
        assert response.json()["error_code"] == 102


# --- a stream that started in time goes on -------------------------------------------------------


class EventStream:
    """A service answering every request with a server-sent event stream: the head at once, then
    one event a second for a few seconds."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Connection: close\r\n\r\n"
            )
            for index in range(self.events):
                time.sleep(1)
                conn.sendall(b"data: event %d\n\n" % index)

    def close(self) -> None:
        self.sock.close()


def test_server_sent_events_stream_past_a_short_timeout(short_default_agent: AgentProcess) -> None:
    service = EventStream(events=SERVICE_DELAY)
    try:
        tunnel = short_default_agent.start_tunnel(name="events", addr=str(service.port))
        with requests.get(f"{tunnel['public_url']}/events", stream=True, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            events = [line for line in response.iter_lines() if line]
    finally:
        service.close()
    assert events == [b"data: event %d" % index for index in range(SERVICE_DELAY)]


def _wait_for(probe: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
