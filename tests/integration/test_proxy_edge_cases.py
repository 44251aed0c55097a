"""The public connection's state machine at its edges, each found by a reproduction against a
real agent: declined upgrades, pause pairing, retries, timeouts, deep pipelines, vanished clients."""

from __future__ import annotations

import base64
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.integration.test_http_tunnel import wait_for_captures
from tests.support.agent_process import AgentProcess
from tests.support.raw_service import Handler, raw_services


def read_head(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(1)
        if not chunk:
            return None
        data += chunk
    return data


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[bytes, bytes]:
    sock.settimeout(timeout)
    head = read_head(sock) or b""
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    body = b""
    while match and len(body) < int(match.group(1)):
        body += sock.recv(65536)
    return head, body


@pytest.fixture
def raw_upstream() -> Iterator[Callable[[Handler], int]]:
    """A loopback server running `handler(connection)` per connection; returns its port."""
    with raw_services() as start:
        yield start


def answer_each(connection: socket.socket, body_for: Callable[[bytes], bytes] = lambda path: b"answer " + path) -> None:
    with connection:
        while (head := read_head(connection)) is not None:
            body = body_for(head.split(b" ")[1])
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def public(tunnel: dict) -> tuple[str, int]:
    host, port = tunnel["public_url"].split("://")[1].split(":")
    return host, int(port)


def test_a_declined_upgrade_never_leaks_its_bytes_to_another_client(agent: AgentProcess, raw_upstream) -> None:
    def slow_private(path: bytes) -> bytes:
        if path == b"/private-of-a":
            time.sleep(0.3)
        return b"answer " + path

    port = raw_upstream(lambda c: answer_each(c, slow_private))
    tunnel = agent.start_tunnel(name="h2c", proto="http", addr=str(port))
    with socket.create_connection(public(tunnel)) as a:
        # curl --http2 on an http:// URL asks for h2c; the service ignores it and answers 200.
        a.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /private-of-a HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert read_response(a)[1] == b"answer /a"
    with socket.create_connection(public(tunnel)) as b:
        b.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(b)[1] == b"answer /b"


def test_a_slow_reader_does_not_leave_a_paused_connection_in_the_pool(agent: AgentProcess, raw_upstream) -> None:
    size = 4_000_000
    port = raw_upstream(lambda c: answer_each(c, lambda path: b"y" * size if path == b"/big" else b"small"))
    tunnel = agent.start_tunnel(name="slow", proto="http", addr=str(port))
    for _ in range(2):
        with socket.socket() as slow:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(public(tunnel))
            slow.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            _, body = read_response(slow, timeout=30)
            assert len(body) == size
        with socket.create_connection(public(tunnel)) as other:
            other.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other, timeout=5)[1] == b"small"


def test_a_post_on_a_dropped_pooled_connection_is_not_sent_twice(agent: AgentProcess, raw_upstream) -> None:
    seen: list[bytes] = []

    def handler(connection: socket.socket) -> None:
        with connection:
            while (head := read_head(connection)) is not None:
                seen.append(head.split(b"\r\n")[0])
                if head.startswith(b"POST"):
                    time.sleep(0.2)  # did the work, then died without answering
                    return
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    tunnel = agent.start_tunnel(name="pay", proto="http", addr=str(raw_upstream(handler)))
    with socket.create_connection(public(tunnel)) as client:
        client.sendall(b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(client)
        client.sendall(b"POST /charge HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert read_response(client)[0].startswith(b"HTTP/1.1 502")
    assert seen.count(b"POST /charge HTTP/1.1") == 1


def test_the_response_timeout_starts_after_the_upload(tmp_path, raw_upstream) -> None:
    def read_all_then_answer(connection: socket.socket) -> None:
        with connection:
            read_head(connection)
            body = b""
            while len(body) < 30:
                body += connection.recv(100)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    agent = AgentProcess(tmp_path / "a", env={"AGENT_UPSTREAM_TIMEOUT": "1"}).start()
    try:
        tunnel = agent.start_tunnel(name="up", proto="http", addr=str(raw_upstream(read_all_then_answer)))
        with socket.create_connection(public(tunnel)) as client:
            client.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n")
            for _ in range(3):  # a 2.5 s upload against a 1 s timeout
                client.sendall(b"x" * 10)
                time.sleep(0.8)
            assert read_response(client)[1] == b"ok"
    finally:
        agent.stop()


def test_an_early_answer_to_a_big_upload_leaves_the_connection_usable(agent: AgentProcess) -> None:
    # The service answers before reading the body (then reads it slowly): while the agent's writes
    # to it are blocked, the public connection is paused; the answer must not leave it paused.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer_then_drain, args=(connection,), daemon=True).start()

    def answer_then_drain(connection: socket.socket) -> None:
        with connection:
            while (head := read_head(connection)) is not None:
                match = re.search(rb"(?i)content-length: *(\d+)", head)
                length = int(match.group(1)) if match else 0
                time.sleep(0.5)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                time.sleep(0.5)
                while length:
                    data = connection.recv(min(length, 65536))
                    if not data:
                        return
                    length -= len(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        tunnel = agent.start_tunnel(name="early", proto="http", addr=str(listener.getsockname()[1]))
        size = 2_900_000
        with socket.create_connection(public(tunnel)) as client:
            client.sendall(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
            assert read_response(client)[1] == b"ok"
            client.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(client, timeout=10)[1] == b"ok"
    finally:
        listener.close()


def test_a_request_head_that_never_completes_gets_a_408(tmp_path) -> None:
    agent = AgentProcess(tmp_path / "a", env={"AGENT_HEAD_TIMEOUT": "1"}).start()
    try:
        tunnel = agent.start_tunnel(name="loris", proto="http", addr="1")
        with socket.create_connection(public(tunnel), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            answer = b""
            while data := client.recv(4096):
                answer += data
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    finally:
        agent.stop()


def test_thousands_of_pipelined_refusals_are_all_answered(agent: AgentProcess, raw_upstream) -> None:
    tunnel = agent.start_tunnel(
        name="auth", proto="http", addr=str(raw_upstream(answer_each)), basic_auth=["u:password"]
    )
    authorization = b"Authorization: Basic " + base64.b64encode(b"u:password") + b"\r\n"
    with socket.create_connection(public(tunnel), timeout=10) as client:
        client.sendall(
            b"GET /ok HTTP/1.1\r\nHost: x\r\n"
            + authorization
            + b"\r\n"
            + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
            + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + authorization
            + b"\r\n"
        )
        answer = b""
        while data := client.recv(1 << 20):
            answer += data
    assert answer.count(b"HTTP/1.1 401 Unauthorized") == 2000
    assert answer.endswith(b"answer /last")


def test_a_client_that_leaves_before_the_answer_is_recorded_as_499(agent: AgentProcess, raw_upstream) -> None:
    def slow(connection: socket.socket) -> None:
        with connection:
            read_head(connection)
            time.sleep(3)

    tunnel = agent.start_tunnel(name="gone", proto="http", addr=str(raw_upstream(slow)))
    with socket.create_connection(public(tunnel)) as client:
        client.sendall(b"GET /impatient HTTP/1.1\r\nHost: x\r\n\r\nGET /never-begun HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        # A reset, not a half-close: a half-closed client may still be waiting for its answer.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    [capture] = wait_for_captures(agent, 1)
    assert capture["request"]["uri"] == "/impatient"
    assert capture["response"]["status_code"] == 499


def test_good_requests_before_garbage_are_answered_first(agent: AgentProcess, raw_upstream) -> None:
    tunnel = agent.start_tunnel(name="mixed", proto="http", addr=str(raw_upstream(answer_each)))
    with socket.create_connection(public(tunnel), timeout=10) as client:
        client.sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01 not http\r\n\r\n")
        answer = b""
        while data := client.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"answer /fine" in answer
    assert b"HTTP/1.1 400 Bad Request" in answer
