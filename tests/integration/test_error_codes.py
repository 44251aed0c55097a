"""ngrok's `ngrok-error-code` on the answers the agent makes itself, through a real agent: the
code for each way a local service fails, none on the proxy's own 400, and a service's field of
that name never reaching the client ("Errors" in ngrok's http-end-source.mdx)."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.integration.test_http_tunnel import raw_exchange, wait_for_captures
from tests.support.agent_process import AgentProcess
from tests.support.raw_service import Handler, raw_services
from tests.support.upstream import free_port


@pytest.fixture
def service() -> Iterator[Callable[[Handler], int]]:
    """A loopback service running `handler(connection)` for each connection; returns its port."""
    with raw_services() as start:
        yield start


def read_request_head(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_service_that_refuses_the_connection_is_err_ngrok_8012(agent: AgentProcess) -> None:
    port = free_port()
    tunnel = agent.start_tunnel(name="down", proto="http", addr=str(port))
    status, headers, body = get(tunnel["public_url"] + "/")
    assert (status, headers["ngrok-error-code"]) == (502, "ERR_NGROK_8012")
    assert f"failed to connect to the local service at localhost:{port}: connection refused".encode() in body
    assert b"ERR_NGROK_8012" in body
    [capture] = wait_for_captures(agent, 1)
    assert capture["response"]["status_code"] == 502
    assert capture["response"]["headers"]["Ngrok-Error-Code"] == ["ERR_NGROK_8012"]


def test_a_response_that_is_not_http_is_err_ngrok_3004(agent: AgentProcess, service) -> None:
    def nonsense(connection: socket.socket) -> None:
        with connection:
            read_request_head(connection)
            connection.sendall(b"NONSENSE\r\n\r\n")

    tunnel = agent.start_tunnel(name="garbage", proto="http", addr=str(service(nonsense)))
    status, headers, body = get(tunnel["public_url"] + "/")
    assert (status, headers["ngrok-error-code"]) == (502, "ERR_NGROK_3004")
    assert b"malformed response from upstream" in body


def test_a_service_that_closes_without_answering_is_err_ngrok_3004(agent: AgentProcess, service) -> None:
    def hang_up(connection: socket.socket) -> None:
        read_request_head(connection)
        connection.close()

    tunnel = agent.start_tunnel(name="hangup", proto="http", addr=str(service(hang_up)))
    status, headers, body = get(tunnel["public_url"] + "/")
    assert (status, headers["ngrok-error-code"]) == (502, "ERR_NGROK_3004")
    assert b"without answering" in body or b"reset the connection" in body


def test_a_service_that_does_not_answer_in_time_is_err_ngrok_3008(agent: AgentProcess, service) -> None:
    release = threading.Event()

    def silent(connection: socket.socket) -> None:
        with connection:
            read_request_head(connection)
            release.wait(30)

    tunnel = agent.start_tunnel(name="silent", proto="http", addr=str(service(silent)), response_timeout="0.3s")
    try:
        status, headers, body = get(tunnel["public_url"] + "/")
    finally:
        release.set()
    assert (status, headers["ngrok-error-code"]) == (504, "ERR_NGROK_3008")
    assert b"did not answer in time" in body


def test_the_proxys_own_400_carries_no_ngrok_code(agent: AgentProcess, service) -> None:
    tunnel = agent.start_tunnel(name="bad", proto="http", addr=str(free_port()))
    answer = raw_exchange(tunnel["public_url"], b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"ngrok-error-code" not in answer.lower()


def test_a_services_own_ngrok_error_code_never_reaches_the_client(agent: AgentProcess, service) -> None:
    def impostor(connection: socket.socket) -> None:
        with connection:
            while read_request_head(connection):
                connection.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nNGROK-ERROR-CODE: ERR_NGROK_3200\r\nX-Kept: yes\r\n"
                    b"Content-Length: 4\r\n\r\nbusy"
                )

    tunnel = agent.start_tunnel(name="impostor", proto="http", addr=str(service(impostor)))
    status, headers, body = get(tunnel["public_url"] + "/")
    assert (status, body, headers["X-Kept"]) == (503, b"busy", "yes")
    assert "ngrok-error-code" not in {name.lower() for name in headers}
