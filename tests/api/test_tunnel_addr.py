"""How `addr` is normalised, as shown in config.addr of the tunnel."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("proto", "addr", "shown"),
    [
        ("http", "80", "http://localhost:80"),
        ("http", "8080", "http://localhost:8080"),
        ("http", 8080, "http://localhost:8080"),
        ("http", "443", "https://localhost:443"),
        ("http", 443, "https://localhost:443"),
        ("http", "example.com:8080", "http://example.com:8080"),
        ("http", "127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http", "example.com:443", "https://example.com:443"),
        ("http", "[::1]:8080", "http://[::1]:8080"),
        ("http", "http://localhost:3000", "http://localhost:3000"),
        ("http", "https://localhost:3000", "https://localhost:3000"),
        ("http", "https://example.com", "https://example.com"),
        ("http", "http://example.com/", "http://example.com/"),
        ("tcp", "22", "localhost:22"),
        ("tcp", 22, "localhost:22"),
        ("tcp", "443", "localhost:443"),
        ("tcp", "db.internal:5432", "db.internal:5432"),
        ("tcp", "tcp://localhost:22", "tcp://localhost:22"),
        ("tls", "80", "localhost:80"),
        ("tls", "443", "tls://localhost:443"),
        ("tls", 443, "tls://localhost:443"),
        ("tls", "example.com:8443", "example.com:8443"),
        ("tls", "example.com:443", "tls://example.com:443"),
        ("tls", "tls://example.com:8443", "tls://example.com:8443"),
    ],
)
def test_addr_is_shown_normalised(agent, proto: str, addr: str | int, shown: str) -> None:
    tunnel = agent.start_tunnel(name="t", proto=proto, addr=addr)
    assert tunnel["config"]["addr"] == shown


def test_detail_and_list_show_the_same_normalised_addr(agent) -> None:
    agent.start_tunnel(name="t", addr=443)
    assert agent.api("GET", "/api/tunnels/t").json()["config"]["addr"] == "https://localhost:443"
    assert agent.api("GET", "/api/tunnels").json()["tunnels"][0]["config"]["addr"] == "https://localhost:443"


@pytest.mark.parametrize("addr", ["0", "65536", -1, "", "localhost:http", True, None, 80.5])
def test_an_impossible_addr_is_refused(agent, addr: object) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "t", "addr": addr})
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == 102


def test_a_tcp_addr_without_a_port_is_refused(agent) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "t", "proto": "tcp", "addr": "localhost"})
    assert response.status_code == 400
    assert response.json()["error_code"] == 102
