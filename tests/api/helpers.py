"""Small assertions and waits shared by the API tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from tests.support.agent_process import AgentProcess

T = TypeVar("T")

ERROR_KEYS = ["error_code", "status_code", "msg", "details"]
TUNNEL_KEYS = ["name", "ID", "uri", "public_url", "proto", "config", "metrics"]
CONNS_KEYS = ["count", "gauge", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99"]
HTTP_KEYS = ["count", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99"]
# ngrok's keys in ngrok's order, then ours: true sizes, whether each message crossed whole, and
# what the endpoint's Traffic Policy did.
CAPTURE_KEYS = [
    "uri",
    "id",
    "tunnel_name",
    "remote_addr",
    "start",
    "duration",
    "incomplete_reason",
    "traffic_policy",
    "request",
    "response",
]
REQUEST_KEYS = ["method", "proto", "headers", "uri", "raw", "size", "truncated", "complete"]
RESPONSE_KEYS = ["status", "status_code", "proto", "headers", "raw", "size", "truncated", "complete"]


def assert_error(response: requests.Response, status: int, error_code: int, err: str | None = None) -> dict:
    """ngrok's error body: exactly four keys in order, string details, a trailing newline."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.text.endswith("}\n")
    body: dict = response.json()
    assert list(body) == ERROR_KEYS
    assert body["error_code"] == error_code
    assert body["status_code"] == status
    assert isinstance(body["msg"], str) and body["msg"]
    assert body["details"] and all(isinstance(k, str) and isinstance(v, str) for k, v in body["details"].items())
    if err is not None:
        assert body["details"]["err"] == err
    return body


def wait_for(probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Poll until probe() gives something truthy (captures reach the database a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout}s; last result {result!r}")
        time.sleep(0.02)


def captures(agent: AgentProcess, **params: Any) -> list[dict]:
    response = agent.api("GET", "/api/requests/http", params=params)
    assert response.status_code == 200, response.text
    return response.json()["requests"]


def wait_for_captures(agent: AgentProcess, count: int, *, complete: bool = True, **params: Any) -> list[dict]:
    """The captures (newest first) once `count` of them are stored, and answered if `complete`."""

    def probe() -> list[dict] | None:
        found = captures(agent, **params)
        if len(found) < count or (complete and any(c["response"] is None for c in found)):
            return None
        return found

    return wait_for(probe)


def raw_exchange(public_url: str, request: bytes) -> bytes:
    """Send exact request bytes through a tunnel and read the whole response (the upstream closes)."""
    host, _, port = public_url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def busy_port() -> tuple[socket.socket, int]:
    """A loopback port some other socket listens on (close the socket when done)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]
