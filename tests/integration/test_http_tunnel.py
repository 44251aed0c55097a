"""HTTP tunnels end to end: a real agent process, a real local service, real sockets."""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, free_port


def captures(agent: AgentProcess, **params: str) -> list[dict]:
    return agent.api("GET", "/api/requests/http", params=params).json()["requests"]


def wait_for_captures(agent: AgentProcess, count: int, *, complete: bool = True) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        found = captures(agent)
        if len(found) >= count and (not complete or all(c["response"] for c in found)):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} captures, have {found}")
        time.sleep(0.05)


def raw_exchange(url: str, payload: bytes, *, read_until_close: bool = True) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while read_until_close:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_a_request_reaches_the_upstream_with_forwarding_headers(agent, upstream: Upstream, http_tunnel) -> None:
    response = requests.post(http_tunnel["public_url"] + "/echo?x=1", data=b"hello", timeout=10)
    assert response.status_code == 200
    assert response.content == b"hello"
    got = upstream.received[-1]
    assert (got.method, got.path, got.body) == ("POST", "/echo?x=1", b"hello")
    assert got.header("X-Forwarded-For") == "127.0.0.1"
    assert got.header("X-Forwarded-Proto") == "http"
    assert got.header("X-Forwarded-Host") == http_tunnel["public_url"].removeprefix("http://")


def test_it_captures_binary_bodies_byte_exact(agent, upstream: Upstream, http_tunnel) -> None:
    body = bytes(range(256)) * 40
    response = requests.put(http_tunnel["public_url"] + "/bin", data=body, timeout=10)
    assert response.content == body
    [capture] = wait_for_captures(agent, 1)
    request_raw = base64.b64decode(capture["request"]["raw"])
    response_raw = base64.b64decode(capture["response"]["raw"])
    assert request_raw.endswith(b"\r\n\r\n" + body)
    assert request_raw.startswith(b"PUT /bin HTTP/1.1\r\n")
    assert response_raw.startswith(b"HTTP/1.1 200 ")
    assert response_raw.endswith(b"\r\n\r\n" + body)
    assert capture["request"]["headers"]["Content-Length"] == [str(len(body))]
    assert "Host" not in capture["request"]["headers"]
    assert capture["response"]["status_code"] == 200
    assert capture["duration"] > 0


def test_keep_alive_serves_many_requests_on_one_connection(agent, upstream: Upstream, http_tunnel) -> None:
    with requests.Session() as session:
        for index in range(20):
            response = session.get(f"{http_tunnel['public_url']}/status/{200 + index % 3}", timeout=10)
            assert response.status_code == 200 + index % 3
    metrics = agent.api("GET", "/api/tunnels/web").json()["metrics"]
    assert metrics["conns"]["count"] == 1
    assert metrics["http"]["count"] == 20


def test_chunked_bodies_stream_both_ways(agent, upstream: Upstream, http_tunnel) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"abc"
        yield b"defgh"

    response = requests.post(http_tunnel["public_url"] + "/echo", data=pieces(), timeout=10)
    assert response.content == b"abcdefgh"
    assert upstream.received[-1].header("Transfer-Encoding") == "chunked"
    chunked = requests.get(http_tunnel["public_url"] + "/chunked", timeout=10)
    assert chunked.content == b"first,second,third"


def test_a_large_body_streams_through(agent, upstream: Upstream, http_tunnel) -> None:
    size = 32 * 1024 * 1024
    response = requests.get(f"{http_tunnel['public_url']}/bytes/{size}", timeout=60)
    assert len(response.content) == size
    assert response.content[:300] == bytes(i % 256 for i in range(300))
    [capture] = wait_for_captures(agent, 1)
    raw = base64.b64decode(capture["response"]["raw"])
    detail = agent.api("GET", capture["uri"]).json()
    assert len(raw) < size  # cut at the capture limit, not held whole
    assert detail["response"]["headers"]["Content-Length"] == [str(size)]


def test_head_and_close_delimited_responses_end_properly(agent, upstream: Upstream, http_tunnel) -> None:
    with requests.Session() as session:
        head = session.head(http_tunnel["public_url"] + "/bytes/1000", timeout=10)
        assert head.headers["Content-Length"] == "1000"
        again = session.get(http_tunnel["public_url"] + "/status/201", timeout=10)
        assert again.status_code == 201
    closed = requests.get(http_tunnel["public_url"] + "/close", timeout=10)
    assert closed.content == b"until the end"


def test_websocket_upgrade_becomes_a_byte_pipe(agent, upstream: Upstream, http_tunnel) -> None:
    host, port = http_tunnel["public_url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        rest = head.split(b"\r\n\r\n", 1)[1]
        sock.sendall(b"\x00raw bytes\xff")
        echoed = rest
        while len(echoed) < 11:
            echoed += sock.recv(4096)
        assert echoed == b"\x00raw bytes\xff"
    [capture] = wait_for_captures(agent, 1)
    assert capture["response"]["status_code"] == 101


def test_refused_upstream_gives_a_recorded_502(agent) -> None:
    tunnel = agent.start_tunnel(name="dead", proto="http", addr=str(free_port()))
    response = requests.get(tunnel["public_url"] + "/anything", timeout=10)
    assert response.status_code == 502
    assert b"connection refused" in response.content
    [capture] = wait_for_captures(agent, 1)
    assert capture["response"]["status_code"] == 502
    assert capture["tunnel_name"] == "dead"


def test_silent_upstream_gives_a_504(tmp_path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path / "a", env={"AGENT_UPSTREAM_TIMEOUT": "1"}).start()
    try:
        tunnel = agent.start_tunnel(name="slow", proto="http", addr=str(upstream.port))
        response = requests.get(tunnel["public_url"] + "/slow/3", timeout=10)
        assert response.status_code == 504
        [capture] = wait_for_captures(agent, 1)
        assert capture["response"]["status_code"] == 504
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", b"400"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), b"400"),
    ],
)
def test_garbage_gets_a_clear_error_and_the_agent_survives(agent, upstream, http_tunnel, payload, status) -> None:
    answer = raw_exchange(http_tunnel["public_url"], payload)
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in answer
    assert requests.get(http_tunnel["public_url"] + "/status/200", timeout=10).status_code == 200


def test_pipelined_requests_are_answered_in_order(agent, upstream, http_tunnel) -> None:
    answer = raw_exchange(
        http_tunnel["public_url"],
        b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /status/202 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /status/203 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert re.findall(rb"HTTP/1.1 (\d{3}) ", answer) == [b"201", b"202", b"203"]


def test_basic_auth_is_enforced_before_forwarding(agent, upstream) -> None:
    # ngrok's basic-auth wants passwords of 8 to 128 characters.
    tunnel = agent.start_tunnel(name="locked", proto="http", addr=str(upstream.port), basic_auth=["ann:password"])
    assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 401
    assert requests.get(tunnel["public_url"] + "/x", auth=("ann", "wrong"), timeout=10).status_code == 401
    assert not upstream.received
    assert requests.get(tunnel["public_url"] + "/x", auth=("ann", "password"), timeout=10).status_code == 200


def test_uninspected_tunnels_forward_without_capturing(agent, upstream) -> None:
    tunnel = agent.start_tunnel(name="quiet", proto="http", addr=str(upstream.port), inspect=False)
    assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 200
    assert captures(agent) == []  # listing stores whatever is queued first


def test_replay_sends_the_stored_request_again_and_records_it(agent, upstream: Upstream, http_tunnel) -> None:
    requests.post(http_tunnel["public_url"] + "/echo", data=b"\x00payload\xff", timeout=10)
    [original] = wait_for_captures(agent, 1)
    response = agent.api("POST", "/api/requests/http", {"id": original["id"]})
    assert response.status_code == 204
    assert [r.body for r in upstream.received] == [b"\x00payload\xff", b"\x00payload\xff"]
    replayed, first = captures(agent)  # listed right after the 204: already recorded
    assert first["id"] == original["id"]
    assert replayed["id"] > original["id"]
    assert replayed["response"]["status_code"] == 200
    assert base64.b64decode(replayed["request"]["raw"]) == base64.b64decode(original["request"]["raw"])


def test_a_request_on_a_pooled_connection_the_upstream_dropped_is_retried_once(agent) -> None:
    """Keep-alive race: the local service closes an idle connection as the agent reuses it."""
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                # Answer one request, then drop the connection when the next one arrives.
                for answered in (True, False):
                    data = connection.recv(65536)
                    if not data:
                        break
                    served.append(data.split(b"\r\n", 1)[0])
                    if answered:
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    threading.Thread(target=serve, daemon=True).start()
    try:
        tunnel = agent.start_tunnel(name="flaky", proto="http", addr=str(listener.getsockname()[1]))
        with requests.Session() as session:
            for _ in range(3):
                response = session.get(tunnel["public_url"] + "/again", timeout=10)
                assert (response.status_code, response.content) == (200, b"ok")
    finally:
        listener.close()
    assert len(served) >= 4  # every retry was a real second attempt
