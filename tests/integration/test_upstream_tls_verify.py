"""`upstream_tls_verify` / `upstream_tls_verify_cas`: an https local service's certificate is
checked only when asked (ngrok's default is not to), and a refused one is the agent's 502 with
ERR_NGROK_8012 and the reason, through a real agent."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.certificates import make_certificate


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


def serve_https(cert: Path, key: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer((host, 0), _Hello)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def https_service(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An https service with a self-signed certificate for localhost: (port, its certificate)."""
    cert, key = make_certificate(tmp_path)
    server = serve_https(cert, key)
    yield int(server.server_address[1]), cert
    server.shutdown()
    server.server_close()


def test_a_self_signed_service_is_reached_unverified_by_default(agent: AgentProcess, https_service) -> None:
    port, _ = https_service
    tunnel = agent.start_tunnel(name="plain", proto="http", addr=f"https://localhost:{port}")
    assert requests.get(tunnel["public_url"], timeout=10).text == "hello"


def test_a_certificate_signed_by_the_given_ca_is_verified(agent: AgentProcess, https_service) -> None:
    port, cert = https_service
    tunnel = agent.start_tunnel(
        name="pinned", proto="http", addr=f"https://localhost:{port}", upstream_tls_verify_cas=str(cert)
    )
    assert requests.get(tunnel["public_url"], timeout=10).text == "hello"


def test_a_certificate_the_system_store_does_not_trust_is_a_502(agent: AgentProcess, https_service) -> None:
    port, _ = https_service
    tunnel = agent.start_tunnel(name="strict", proto="http", addr=f"https://localhost:{port}", upstream_tls_verify=True)
    response = requests.get(tunnel["public_url"], timeout=10)
    assert (response.status_code, response.headers["ngrok-error-code"]) == (502, "ERR_NGROK_8012")
    assert (
        f"failed to connect to the local service at localhost:{port}: its TLS certificate was refused "
        "(upstream_tls_verify): self-signed certificate"
    ) in response.text


def test_a_certificate_from_another_ca_is_a_502(agent: AgentProcess, https_service, tmp_path: Path) -> None:
    port, _ = https_service
    (tmp_path / "other").mkdir()
    other_ca, _ = make_certificate(tmp_path / "other")
    tunnel = agent.start_tunnel(
        name="wrong", proto="http", addr=f"https://localhost:{port}", upstream_tls_verify_cas=str(other_ca)
    )
    response = requests.get(tunnel["public_url"], timeout=10)
    assert (response.status_code, response.headers["ngrok-error-code"]) == (502, "ERR_NGROK_8012")
    assert "its TLS certificate was refused (upstream_tls_verify)" in response.text


def test_a_host_name_the_certificate_does_not_name_is_a_502(agent: AgentProcess, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)  # names localhost and 127.0.0.1 only
    server = serve_https(cert, key, host="127.0.0.2")
    try:
        port = int(server.server_address[1])
        tunnel = agent.start_tunnel(
            name="renamed", proto="http", addr=f"https://127.0.0.2:{port}", upstream_tls_verify_cas=str(cert)
        )
        response = requests.get(tunnel["public_url"], timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 502
    assert "its TLS certificate was refused (upstream_tls_verify): IP address mismatch" in response.text
