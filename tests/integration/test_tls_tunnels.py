"""TLS on the public side: https tunnels with the agent's certificate, tls passthrough and termination."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.certificates import make_certificate
from tests.support.echo import echo_server
from tests.support.upstream import Upstream

# Unverified requests are on purpose where a test does not check the certificate.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def echo_port() -> Iterator[int]:
    with echo_server() as port:
        yield port


def tls_client(url: str, *, ca: Path | None = None) -> ssl.SSLSocket:
    host, port = url.split("://", 1)[1].split(":")
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    return context.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)


def test_an_https_tunnel_serves_tls_and_says_so_upstream(agent: AgentProcess, upstream: Upstream, tmp_path) -> None:
    tunnel = agent.start_tunnel(name="secure", proto="http", addr=str(upstream.port), schemes=["https"])
    assert tunnel["proto"] == "https"
    assert tunnel["public_url"].startswith("https://127.0.0.1:")
    response = requests.post(tunnel["public_url"] + "/echo", data=b"sealed", verify=False, timeout=10)
    assert response.content == b"sealed"
    assert upstream.received[-1].header("X-Forwarded-Proto") == "https"
    # The agent's self-signed certificate names the public host.
    cert = ssl.get_server_certificate(("127.0.0.1", int(tunnel["public_url"].rsplit(":", 1)[1])))
    (tmp_path / "agent.pem").write_text(cert)
    verified = requests.get(tunnel["public_url"] + "/status/200", verify=str(tmp_path / "agent.pem"), timeout=10)
    assert verified.status_code == 200


def test_both_schemes_open_a_named_pair_and_stopping_one_leaves_the_other(agent: AgentProcess, upstream) -> None:
    first = agent.start_tunnel(name="pair", proto="http", addr=str(upstream.port), bind_tls="both")
    assert first["name"] == "pair"
    assert first["proto"] == "https"
    tunnels = {t["name"]: t for t in agent.api("GET", "/api/tunnels").json()["tunnels"]}
    assert set(tunnels) == {"pair", "pair (http)"}
    assert tunnels["pair (http)"]["proto"] == "http"
    assert tunnels["pair (http)"]["uri"] == "/api/tunnels/pair%20%28http%29"
    assert agent.api("DELETE", "/api/tunnels/pair").status_code == 204
    twin = tunnels["pair (http)"]["public_url"]
    assert requests.get(twin + "/status/200", timeout=10).status_code == 200
    assert [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]] == ["pair (http)"]


def test_a_tls_tunnel_passes_the_handshake_through_to_the_local_service(agent: AgentProcess, tmp_path) -> None:
    cert, key = make_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_once() -> None:
        connection, _ = listener.accept()
        with context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(b"hello from the local service: " + tls.recv(100))

    threading.Thread(target=serve_once, daemon=True).start()
    try:
        tunnel = agent.start_tunnel(name="pass", proto="tls", addr=str(listener.getsockname()[1]))
        assert tunnel["public_url"].startswith("tls://")
        with tls_client(tunnel["public_url"], ca=cert) as client:  # verifies the local service's cert
            client.sendall(b"hi")
            assert client.recv(100) == b"hello from the local service: hi"
    finally:
        listener.close()


def test_a_tls_tunnel_with_crt_and_key_terminates_at_the_agent(agent: AgentProcess, tmp_path, echo_port) -> None:
    cert, key = make_certificate(tmp_path)
    tunnel = agent.start_tunnel(name="term", proto="tls", addr=str(echo_port), crt=str(cert), key=str(key))
    with tls_client(tunnel["public_url"], ca=cert) as client:
        client.sendall(b"plain to the echo server")
        assert client.recv(100) == b"plain to the echo server"


def test_tls_termination_needs_readable_crt_and_key(agent: AgentProcess) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "t", "proto": "tls", "addr": "1", "crt": "/nonexistent"})
    assert response.status_code == 400
    assert "needs both crt and key" in response.json()["details"]["err"]


def test_the_command_line_opens_https_with_scheme(tmp_path, upstream: Upstream) -> None:
    agent = AgentProcess(tmp_path / "data", "http", str(upstream.port), "--scheme", "https").start()
    try:
        url = agent.public_urls["command_line"]
        assert url.startswith("https://")
        assert requests.get(url + "/status/200", verify=False, timeout=10).status_code == 200
    finally:
        agent.stop()
