"""The services and clients people really use, through a real agent: a two-write `http.server`,
services that close connections without saying so, one on ::1 only; urllib with
`Connection: close`, one connection per request, HTTP/1.0, concurrency. Nothing may be lost."""

from __future__ import annotations

import base64
import http.client
import json
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.agent_process import AgentProcess


class TwoWriteHandler(BaseHTTPRequestHandler):
    """Like Django's runserver: the head and the body leave in two writes; HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    close_every_response = False  # close after answering, without a `Connection: close`
    close_after = 0.0  # ...this many seconds later: the close races the agent's reuse
    received: dict[str, bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received[self.path] = body
        self._answer(json.dumps({"path": self.path, "got": len(body)}).encode())

    def do_GET(self) -> None:
        self.received[self.path] = b""
        self._answer(b"hello " + self.path.encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.close_every_response:
            self.close_connection = True
            time.sleep(self.close_after * random.random())

    def log_message(self, *args: object) -> None:
        pass


class IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _serve(handler: type[TwoWriteHandler], *, host: str = "127.0.0.1", **attributes: object) -> ThreadingHTTPServer:
    handler_class = type("Handler", (handler,), {"received": {}, **attributes})
    server_class = IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def two_write() -> Iterator[ThreadingHTTPServer]:
    server = _serve(TwoWriteHandler)
    yield server
    server.shutdown()


@pytest.fixture
def closing() -> Iterator[ThreadingHTTPServer]:
    server = _serve(TwoWriteHandler, close_every_response=True)
    yield server
    server.shutdown()


@pytest.fixture
def closing_late() -> Iterator[ThreadingHTTPServer]:
    """Closes a few milliseconds after answering, as a keep-alive timeout does: the agent may
    already have sent the next request on that connection (the service never reads it)."""
    server = _serve(TwoWriteHandler, close_every_response=True, close_after=0.004)
    yield server
    server.shutdown()


def _post_with_close(url: str, i: int) -> tuple[int, bytes]:
    body = json.dumps({"event": "invoice.paid", "n": i, "pad": "x" * 300}).encode()
    request = urllib.request.Request(
        f"{url}/hook/{i}", data=body, headers={"Content-Type": "application/json", "Connection": "close"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, body
    except urllib.error.HTTPError as error:
        return error.code, body


def _captures(agent: AgentProcess, tunnel: str) -> dict[str, dict]:
    listed = agent.api("GET", f"/api/requests/http?limit=10000&tunnel_name={tunnel}").json()["requests"]
    return {capture["request"]["uri"]: capture for capture in listed}


@pytest.mark.parametrize("service", ["two_write", "closing", "closing_late"])
def test_webhook_posts_with_connection_close_all_arrive_whole(
    agent: AgentProcess, service: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(service)
    tunnel = agent.start_tunnel(name="hooks", proto="http", addr=str(server.server_address[1]))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: _post_with_close(tunnel["public_url"], i), range(150)))
    assert [status for status, _ in answers] == [200] * 150
    received = server.RequestHandlerClass.received
    assert all(received.get(f"/hook/{i}") == body for i, (_, body) in enumerate(answers))
    captures = _captures(agent, "hooks")
    for i, (_, body) in enumerate(answers):
        capture = captures[f"/hook/{i}"]
        assert base64.b64decode(capture["request"]["raw"]).endswith(body)
        assert capture["request"]["complete"] and capture["response"]["complete"]
        assert capture["response"]["status_code"] == 200


def test_the_service_never_sees_the_clients_connection_fields(agent: AgentProcess) -> None:
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            conn.recv(1)

    threading.Thread(target=serve, daemon=True).start()
    tunnel = agent.start_tunnel(name="hop", proto="http", addr=str(listener.getsockname()[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(
            b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n"
            b"Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\r\n"
        )
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    listener.close()
    assert answer.startswith(b"HTTP/1.1 200 OK")
    head = seen[0].lower()
    for field in (b"connection:", b"x-secret-hop:", b"keep-alive:", b"te:", b"upgrade:"):
        assert field not in head, seen[0]
    assert b"x-end-to-end: kept" in head


def test_one_connection_per_request_reuses_the_upstream_and_loses_nothing(
    agent: AgentProcess, two_write: ThreadingHTTPServer
) -> None:
    tunnel = agent.start_tunnel(name="fresh", proto="http", addr=str(two_write.server_address[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])

    def one_shot(i: int) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", f"/one/{i}")
        body = connection.getresponse().read()
        connection.close()
        return body

    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(one_shot, range(200)))
    assert bodies == [f"hello /one/{i}".encode() for i in range(200)]


def test_http10_requests_do_not_leave_a_closing_connection_in_the_pool(
    agent: AgentProcess, two_write: ThreadingHTTPServer
) -> None:
    tunnel = agent.start_tunnel(name="old", proto="http", addr=str(two_write.server_address[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])

    def exchange(i: int) -> bytes:
        if i % 2:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(f"GET /v10/{i} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                answer = b""
                while chunk := client.recv(65536):
                    answer += chunk
                return answer.split(b"\r\n\r\n", 1)[1]
        _, body = _post_with_close(tunnel["public_url"], i)
        return body

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(exchange, range(100)))
    assert all(answers[i] == f"hello /v10/{i}".encode() for i in range(1, 100, 2))
    received = two_write.RequestHandlerClass.received  # type: ignore[attr-defined]  # set by _serve
    assert all(f"/hook/{i}" in received for i in range(0, 100, 2))


def test_localhost_reaches_a_service_on_ipv6_loopback_only(agent: AgentProcess) -> None:
    try:
        server = _serve(TwoWriteHandler, host="::1")
    except OSError:
        pytest.fail("this machine has no ::1: the agent's dual-stack dial cannot be tested")
    try:
        tunnel = agent.start_tunnel(name="six", proto="http", addr=f"localhost:{server.server_address[1]}")
        with urllib.request.urlopen(tunnel["public_url"] + "/v6", timeout=30) as response:
            assert response.read() == b"hello /v6"
        tcp = agent.start_tunnel(name="six-tcp", proto="tcp", addr=f"localhost:{server.server_address[1]}")
        host, port = tcp["public_url"].removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as client:
            client.sendall(b"GET /v6tcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert answer.endswith(b"hello /v6tcp")
    finally:
        server.shutdown()


def test_a_huge_response_head_becomes_a_recorded_502(agent: AgentProcess) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * (12 * 1024 * 1024) + b"\r\n\r\n")
            except OSError:
                pass  # the agent gave up reading: that is the point

    threading.Thread(target=serve, daemon=True).start()
    tunnel = agent.start_tunnel(name="big-head", proto="http", addr=str(listener.getsockname()[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/big")
    response = connection.getresponse()
    body = response.read()
    listener.close()
    assert response.status == 502
    assert b"larger than 65536 bytes" in body
    capture = _wait_for_capture(agent, "big-head")
    assert capture["response"]["status_code"] == 502


def _wait_for_capture(agent: AgentProcess, tunnel: str) -> dict:
    for _ in range(100):
        listed = agent.api("GET", f"/api/requests/http?tunnel_name={tunnel}").json()["requests"]
        if listed and listed[0]["response"] is not None:
            return listed[0]
        time.sleep(0.1)
    raise AssertionError("no finished capture")


def test_a_client_that_leaves_mid_upload_is_captured_as_incomplete(agent: AgentProcess) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while chunk := conn.recv(65536):
                got.append(chunk)

    threading.Thread(target=serve, daemon=True).start()
    tunnel = agent.start_tunnel(name="half-up", proto="http", addr=str(listener.getsockname()[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 400)
        time.sleep(0.3)
    capture = _wait_for_capture(agent, "half-up")
    listener.close()
    assert capture["request"]["complete"] is False
    assert capture["request"]["size"] < 1000 + 60
    assert "client closed" in capture["incomplete_reason"]
    # Replaying it would leave the service waiting for 600 missing bytes: refused, clearly.
    refused = agent.api("POST", "/api/requests/http", {"id": capture["id"]})
    assert refused.status_code == 400
    assert "client closed" in refused.json()["details"]["err"]


def test_a_service_that_dies_mid_response_is_captured_as_incomplete(agent: AgentProcess) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 100)

    threading.Thread(target=serve, daemon=True).start()
    tunnel = agent.start_tunnel(name="half-down", proto="http", addr=str(listener.getsockname()[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/cut")
    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    capture = _wait_for_capture(agent, "half-down")
    listener.close()
    assert capture["response"]["complete"] is False
    assert capture["request"]["complete"] is True
    assert "before the response was complete" in capture["incomplete_reason"]


def test_a_body_after_a_204_never_reaches_the_client(agent: AgentProcess) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n{"oops": "a body"}')
            time.sleep(0.5)

    threading.Thread(target=serve, daemon=True).start()
    tunnel = agent.start_tunnel(name="no-body", proto="http", addr=str(listener.getsockname()[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"DELETE /thing HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    listener.close()
    assert answer == b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"


def test_pipelined_posts_are_each_captured_head_first(agent: AgentProcess, two_write: ThreadingHTTPServer) -> None:
    tunnel = agent.start_tunnel(name="pipe", proto="http", addr=str(two_write.server_address[1]))
    port = int(tunnel["public_url"].rsplit(":", 1)[1])
    bodies = [bytes([65 + i]) * (700 * i) for i in range(5)]
    batch = b"".join(
        b"POST /p/%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, len(body), body)
        for i, body in enumerate(bodies)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(batch)  # five requests, bodies in the same write as the next heads
        answer = b""
        while answer.count(b"HTTP/1.1 200") < 5:
            chunk = client.recv(65536)
            assert chunk, answer
            answer += chunk
    captures = _captures(agent, "pipe")
    for i, body in enumerate(bodies):
        raw = base64.b64decode(captures[f"/p/{i}"]["request"]["raw"])
        assert raw.startswith(b"POST /p/%d HTTP/1.1\r\n" % i)
        assert raw.endswith(b"\r\n\r\n" + body)
        assert captures[f"/p/{i}"]["request"]["headers"]["Content-Length"] == [str(len(body))]
