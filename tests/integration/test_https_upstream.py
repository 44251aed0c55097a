"""An http tunnel whose addr is an https:// URL talks TLS to the local service."""

from __future__ import annotations

import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests

from tests.support.agent_process import AgentProcess
from tests.support.certificates import make_certificate
from tests.support.upstream import start_upstream


def test_an_https_addr_is_reached_over_tls(agent: AgentProcess, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    upstream = start_upstream()
    server: ThreadingHTTPServer = upstream.server
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstream.server.shutdown()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tunnel = agent.start_tunnel(name="secure", proto="http", addr=f"https://localhost:{upstream.port}")
        assert tunnel["config"]["addr"] == f"https://localhost:{upstream.port}"
        response = requests.post(tunnel["public_url"] + "/echo", data=b"over tls", timeout=10)
        assert response.content == b"over tls"
        assert upstream.received[-1].body == b"over tls"
    finally:
        upstream.close()
