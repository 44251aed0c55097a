"""`host_header: rewrite` also points the service's redirects back at the public URL ("Rewriting the
host header" in ngrok's http-end-source.mdx), through a real agent and a service that builds its
redirects from the Host it was sent, as Django's runserver does."""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.support.agent_process import AgentProcess


class _Redirecting(BaseHTTPRequestHandler):
    """`/` redirects to `http://<the Host it got>/next`; `/fixed` to `http://localhost:<port>/next`;
    `/next` answers with the Host it got."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        host = self.headers["Host"]
        if self.path in ("/", "/fixed"):
            target = host if self.path == "/" else f"localhost:{self.connection.getsockname()[1]}"
            self.send_response(302)
            self.send_header("Location", f"http://{target}/next?from=django")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"next, as {host}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def runserver() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def location_of(url: str, path: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.netloc, timeout=10, context=ssl._create_unverified_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        assert response.status == 302
        return response.headers["Location"]
    finally:
        connection.close()


def test_a_redirect_to_the_rewritten_host_comes_back_to_the_public_url(agent: AgentProcess, runserver: int) -> None:
    tunnel = agent.start_tunnel(name="django", proto="http", addr=f"localhost:{runserver}", host_header="rewrite")
    public = tunnel["public_url"]
    assert location_of(public, "/") == f"{public}/next?from=django"
    # A browser (urllib here) follows it through the tunnel, where the service sees its own host.
    with urllib.request.urlopen(urllib.request.Request(public + "/", headers={"Connection": "close"})) as response:
        assert response.url == f"{public}/next?from=django"
        assert response.read() == f"next, as localhost:{runserver}".encode()


def test_an_https_tunnel_sends_its_clients_back_over_https(agent: AgentProcess, runserver: int) -> None:
    tunnel = agent.start_tunnel(
        name="secure", proto="http", addr=f"localhost:{runserver}", host_header="rewrite", bind_tls=True
    )
    public = tunnel["public_url"]
    assert public.startswith("https://")
    assert location_of(public, "/") == f"{public}/next?from=django"


def test_without_host_header_rewrite_the_location_is_the_services(agent: AgentProcess, runserver: int) -> None:
    tunnel = agent.start_tunnel(name="plain", proto="http", addr=f"localhost:{runserver}")
    assert location_of(tunnel["public_url"], "/fixed") == f"http://localhost:{runserver}/next?from=django"
    literal = agent.start_tunnel(name="literal", proto="http", addr=f"localhost:{runserver}", host_header="example.com")
    assert location_of(literal["public_url"], "/") == "http://example.com/next?from=django"
