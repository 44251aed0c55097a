"""POST /api/tunnels refusals: 400/102 for a bad definition, 502/103 when the listener cannot open."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error, busy_port
from tests.support.agent_process import AgentProcess


def names(agent: AgentProcess) -> list[str]:
    return [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]]


@pytest.mark.parametrize("proto", ["https", "udp", "HTTP", ""])
def test_an_unknown_proto_is_refused(agent, proto: str) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "x", "proto": proto, "addr": "80"})
    body = assert_error(response, 400, 102, f"Invalid protocol name '{proto}'")
    assert body["msg"] == "invalid tunnel configuration"
    assert names(agent) == []


@pytest.mark.parametrize(
    ("proto", "go_type"), [("http", "HTTPv2Tunnel"), ("tcp", "TCPv2Tunnel"), ("tls", "TLSv2Tunnel")]
)
def test_an_unknown_key_is_refused_with_gos_wording(agent, proto: str, go_type: str) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "x", "proto": proto, "addr": "80", "foo": 1})
    assert_error(response, 400, 102, f"field foo not found in type config.{go_type}")
    assert names(agent) == []


def test_an_http_key_on_a_tcp_tunnel_is_unknown(agent) -> None:
    body = {"name": "x", "proto": "tcp", "addr": "22", "basic_auth": ["a:b"]}
    assert_error(
        agent.api("POST", "/api/tunnels", body), 400, 102, "field basic_auth not found in type config.TCPv2Tunnel"
    )


def test_a_missing_addr_is_refused(agent) -> None:
    assert_error(agent.api("POST", "/api/tunnels", {"name": "x"}), 400, 102)


def test_a_body_that_is_not_an_object_is_refused(agent) -> None:
    assert_error(agent.api("POST", "/api/tunnels", ["addr", "80"]), 400, 102)


def test_invalid_json_is_refused(agent) -> None:
    response = agent.api("POST", "/api/tunnels", data=b'{"addr": ', headers={"Content-Type": "application/json"})
    assert_error(response, 400, 100)
    assert names(agent) == []


def test_a_duplicate_name_is_refused_and_the_first_tunnel_keeps_running(agent) -> None:
    first = agent.start_tunnel(name="x", addr="8080")
    response = agent.api("POST", "/api/tunnels", {"name": "x", "addr": "9090"})
    body = assert_error(response, 400, 102, 'tunnel "x" already exists')
    assert body["msg"] == "invalid tunnel configuration"
    detail = agent.api("GET", "/api/tunnels/x").json()
    assert (detail["public_url"], detail["config"]["addr"]) == (first["public_url"], "http://localhost:8080")


def test_an_http_tunnel_whose_url_port_is_taken_fails_with_502(agent) -> None:
    sock, port = busy_port()
    with sock:
        response = agent.api("POST", "/api/tunnels", {"name": "x", "addr": "80", "url": f"http://127.0.0.1:{port}"})
    body = assert_error(response, 502, 103)
    assert body["msg"] == "failed to start tunnel"
    assert str(port) in body["details"]["err"]
    assert names(agent) == []
    assert agent.api("GET", "/api/tunnels/x").status_code == 404


def test_a_tcp_tunnel_whose_remote_addr_is_taken_fails_with_502(agent) -> None:
    sock, port = busy_port()
    with sock:
        body = {"name": "x", "proto": "tcp", "addr": "22", "remote_addr": f"127.0.0.1:{port}"}
        response = agent.api("POST", "/api/tunnels", body)
    assert_error(response, 502, 103)
    assert names(agent) == []


def test_the_name_is_free_again_after_a_listener_failure(agent) -> None:
    sock, port = busy_port()
    with sock:
        agent.api("POST", "/api/tunnels", {"name": "x", "addr": "80", "url": f"127.0.0.1:{port}"})
    assert agent.api("POST", "/api/tunnels", {"name": "x", "addr": "80"}).status_code == 201


def test_a_lone_surrogate_in_a_name_becomes_the_replacement_character(agent) -> None:
    # Go's decoder turns an unpaired \\ud800 into U+FFFD; storing it raw would fail.
    response = agent.api(
        "POST",
        "/api/tunnels",
        data=b'{"name": "a\\ud800b", "addr": "80"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a\ufffdb"
    assert names(agent) == ["a\ufffdb"]
