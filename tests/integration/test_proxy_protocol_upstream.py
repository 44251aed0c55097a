"""`proxy_protocol`: the local service reads HAProxy's PROXY header, v1 or v2, with the public
client's address before anything else, on tcp, tls and http tunnels of a real agent. The header is
read by an independent implementation (the `proxy-protocol` package)."""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proxyprotocol.result import ProxyResult
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from tests.support.agent_process import AgentProcess
from tests.support.certificates import make_certificate


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed inside the PROXY header")
        data += chunk
    return data


def read_proxy_header(sock: socket.socket) -> ProxyResult:
    """The PROXY header at the start of a connection, v1 or v2, read byte-exactly."""
    start = read_exactly(sock, 16)
    if start.startswith(b"PROXY "):
        line = start
        while not line.endswith(b"\r\n"):
            line += read_exactly(sock, 1)
        return ProxyProtocolV1().unpack(line)
    (length,) = struct.unpack("!H", start[14:16])
    return ProxyProtocolV2().unpack(start + read_exactly(sock, length))


class ProxiedService:
    """A loopback service that reads each connection's PROXY header, then runs `handler`."""

    def __init__(self, handler: Callable[[socket.socket, ProxyResult], None]) -> None:
        self.headers: list[ProxyResult] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.handler = handler
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            header = read_proxy_header(connection)
            self.headers.append(header)
            self.handler(connection, header)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxied() -> Iterator[Callable[[Callable[[socket.socket, ProxyResult], None]], ProxiedService]]:
    services: list[ProxiedService] = []

    def start(handler: Callable[[socket.socket, ProxyResult], None]) -> ProxiedService:
        services.append(ProxiedService(handler))
        return services[-1]

    yield start
    for service in services:
        service.close()


def echo(connection: socket.socket, header: ProxyResult) -> None:
    while data := connection.recv(65536):
        connection.sendall(data)


def answer_with_the_client(connection: socket.socket, header: ProxyResult) -> None:
    """HTTP/1.1 keep-alive: each response's body is the client address the header gave."""
    reader = connection.makefile("rb")
    peer = header.peername
    assert isinstance(peer, tuple)
    while reader.readline() not in (b"", b"\r\n"):  # the request line
        while reader.readline() not in (b"\r\n", b""):
            pass
        body = f"{peer[0]}:{peer[1]}".encode()
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].split(":")
    return host, int(port)


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_tcp_service_reads_the_clients_address_before_its_bytes(agent: AgentProcess, proxied, version: str) -> None:
    service = proxied(echo)
    tunnel = agent.start_tunnel(name="tcp", proto="tcp", addr=str(service.port), proxy_protocol=version)
    with socket.create_connection(address(tunnel["public_url"]), timeout=10) as client:
        client.sendall(b"first bytes")
        assert client.recv(65536) == b"first bytes"
        [header] = service.headers
        assert header.peername == client.getsockname()
        assert header.sockname == address(tunnel["public_url"])


def test_a_tls_passthrough_service_reads_the_header_then_its_handshake(
    agent: AgentProcess, proxied, tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    def tls_echo(connection: socket.socket, header: ProxyResult) -> None:
        with server_context.wrap_socket(connection, server_side=True) as tls:
            while data := tls.recv(65536):
                tls.sendall(data)

    service = proxied(tls_echo)
    tunnel = agent.start_tunnel(name="tls", proto="tls", addr=str(service.port), proxy_protocol=2)
    client_context = ssl.create_default_context(cafile=str(cert))
    raw = socket.create_connection(address(tunnel["public_url"]), timeout=10)
    with client_context.wrap_socket(raw, server_hostname="localhost") as client:
        client.sendall(b"sealed")
        assert client.recv(65536) == b"sealed"
        assert service.headers[0].peername == client.getsockname()


def test_each_http_request_carries_its_own_clients_address(agent: AgentProcess, proxied) -> None:
    service = proxied(answer_with_the_client)
    tunnel = agent.start_tunnel(name="web", proto="http", addr=str(service.port), proxy_protocol="1")
    clients = [http.client.HTTPConnection(*address(tunnel["public_url"]), timeout=10) for _ in range(3)]
    try:
        for _ in range(2):  # keep-alive: a second request on each public connection
            for client in clients:
                client.request("GET", "/")
                response = client.getresponse()
                assert response.status == 200
                assert client.sock is not None
                host, port = client.sock.getsockname()[:2]
                assert response.read() == f"{host}:{port}".encode()
    finally:
        for client in clients:
            client.close()
    # Never pooled: no upstream connection carried another client's requests.
    assert len(service.headers) == 6
    assert all(header.sockname == address(tunnel["public_url"]) for header in service.headers)
