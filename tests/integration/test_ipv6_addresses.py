"""IPv6 literals are bracketed wherever a host and a port meet: real traffic over ::1.

The local service listens on [::1]; the Host header it receives on `host_header: rewrite`,
config.addr, the public URL of a listener on ::1 and the agent's log lines all write the address
as `[::1]:PORT`.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream, _Handler


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@pytest.fixture
def upstream_v6() -> Iterator[Upstream]:
    """The support module's recording service, on [::1]."""
    handler: Any = type("Handler", (_Handler,), {})
    server = _IPv6Server(("::1", 0), handler)
    server.daemon_threads = True
    service = Upstream(server)
    handler.upstream = service
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield service
    service.close()


def test_host_header_rewrite_sends_a_bracketed_host(agent: AgentProcess, upstream_v6: Upstream) -> None:
    tunnel = agent.start_tunnel(name="v6", addr=f"[::1]:{upstream_v6.port}", host_header="rewrite")
    assert tunnel["config"]["addr"] == f"http://[::1]:{upstream_v6.port}"
    response = requests.get(tunnel["public_url"] + "/hello", timeout=10)
    assert response.status_code == 200
    assert upstream_v6.received[-1].header("Host") == f"[::1]:{upstream_v6.port}"


def test_an_ipv6_url_addr_is_dialled_and_rewritten_too(agent: AgentProcess, upstream_v6: Upstream) -> None:
    addr = f"http://[::1]:{upstream_v6.port}"
    tunnel = agent.start_tunnel(name="v6url", addr=addr, host_header="rewrite")
    assert tunnel["config"]["addr"] == addr
    assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 200
    assert upstream_v6.received[-1].header("Host") == f"[::1]:{upstream_v6.port}"


def test_a_listener_on_ipv6_has_a_bracketed_public_url(agent: AgentProcess, upstream_v6: Upstream) -> None:
    tunnel = agent.start_tunnel(name="v6listen", addr=f"[::1]:{upstream_v6.port}", url="http://[::1]")
    assert re.fullmatch(r"http://\[::1\]:\d+", tunnel["public_url"]), tunnel["public_url"]
    response = requests.get(tunnel["public_url"] + "/through", timeout=10)
    assert response.status_code == 200
    assert upstream_v6.received[-1].path == "/through"
    endpoint = agent.api("GET", "/api/endpoints/v6listen").json()
    assert endpoint["url"] == tunnel["public_url"]


def test_an_ipv6_public_host_gives_bracketed_urls_and_log_lines(tmp_path: Path, upstream_v6: Upstream) -> None:
    process = AgentProcess(
        tmp_path / "agent",
        "http",
        f"[::1]:{upstream_v6.port}",
        "--host-header",
        "rewrite",
        env={"AGENT_PUBLIC_HOST": "::1"},
    ).start()
    try:
        [line] = [line for line in process.lines if 'msg="started tunnel"' in line]
        public_url = process.public_urls["command_line"]
        assert re.fullmatch(r"http://\[::1\]:\d+", public_url), public_url
        assert f"addr=http://[::1]:{upstream_v6.port}" in line
        assert f"url={public_url}" in line
        tunnel = process.api("GET", "/api/tunnels/command_line").json()
        assert (tunnel["public_url"], tunnel["config"]["addr"]) == (public_url, f"http://[::1]:{upstream_v6.port}")
        assert requests.get(public_url + "/logged", timeout=10).status_code == 200
        assert upstream_v6.received[-1].header("Host") == f"[::1]:{upstream_v6.port}"
    finally:
        process.stop()


def test_a_tcp_tunnel_to_ipv6_shows_a_bracketed_addr(agent: AgentProcess, upstream_v6: Upstream) -> None:
    tunnel = agent.start_tunnel(name="v6tcp", proto="tcp", addr=f"[::1]:{upstream_v6.port}")
    assert tunnel["config"]["addr"] == f"[::1]:{upstream_v6.port}"
    host, _, port = tunnel["public_url"].removeprefix("tcp://").rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
        sock.sendall(b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_an_unbracketed_ipv6_addr_is_refused_with_a_hint(agent: AgentProcess) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "x", "addr": "::1:8080"})
    assert response.status_code == 400
    assert "[::1]:8080" in response.json()["details"]["err"]
