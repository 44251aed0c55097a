"""Bad input from outside gets a 4xx in ngrok's error shape, never a server error (each a kind).

- OPTIONS on any API path: 204 with Allow (DRF's metadata used to crash: 500).
- A WebSocket handshake to an unknown path of the web interface: 404, one log line, no traceback.
- A tunnel or endpoint definition with a value of the wrong JSON type (`"name": false`), too long,
  too big, or an address Go would refuse (`127.0.0.1:`, hundreds of digits): 400/102.
"""

from __future__ import annotations

import base64
import os
import socket
import time

import pytest

from tests.api.helpers import assert_error
from tests.support.agent_process import AgentProcess

API_PATHS = [
    "/api",
    "/api/",
    "/api/tunnels",
    "/api/tunnels/",
    "/api/tunnels/web",
    "/api/tunnels/no-such-tunnel",
    "/api/endpoints",
    "/api/endpoints/web",
    "/api/requests/http",
    "/api/requests/http/airt_nothing",
    "/api/status",
    "/api/schema",
    "/api/nothing/here",
]


def names(agent: AgentProcess) -> list[str]:
    return [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]]


def log_lines_after(agent: AgentProcess, count: int) -> list[str]:
    time.sleep(0.2)  # the agent's log lines arrive through a pipe
    return agent.lines[count:]


# --- OPTIONS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", API_PATHS)
def test_options_on_any_api_path_is_never_a_server_error(agent, path: str) -> None:
    agent.start_tunnel(name="web", addr="8080")
    response = agent.api("OPTIONS", path)
    if path == "/api/nothing/here":
        assert_error(response, 404, 100)
        return
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "OPTIONS" in response.headers["Allow"]
    assert "Access-Control-Allow-Origin" not in response.headers


def test_options_lists_the_methods_of_the_resource(agent) -> None:
    allow = agent.api("OPTIONS", "/api/tunnels").headers["Allow"]
    assert {m.strip() for m in allow.split(",")} == {"GET", "POST", "HEAD", "OPTIONS"}
    allow = agent.api("OPTIONS", "/api/endpoints/x").headers["Allow"]
    assert {m.strip() for m in allow.split(",")} == {"GET", "PUT", "DELETE", "HEAD", "OPTIONS"}


def test_options_with_a_json_body_also_answers(agent) -> None:
    assert agent.api("OPTIONS", "/api/tunnels", {}).status_code == 204


# --- WebSockets on the web interface -------------------------------------------------------


def websocket_handshake(agent: AgentProcess, path: str, *, origin: str | None = None) -> bytes:
    host = agent.api_url.removeprefix("http://")
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin or agent.api_url}",
    ]
    address, _, port = host.rpartition(":")
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/ws/nothing-here", "/ws/inspector/extra", "/api/tunnels", "/"])
def test_a_websocket_to_an_unknown_path_is_refused_with_404_and_one_log_line(agent, path: str) -> None:
    before = len(agent.lines)
    answer = websocket_handshake(agent, path)
    assert answer.startswith(b"HTTP/1.1 404 "), answer
    lines = log_lines_after(agent, before)
    assert len(lines) <= 1, lines
    assert not [line for line in lines if "Traceback" in line or "lvl=eror" in line or "500" in line]


def test_a_websocket_from_another_origin_is_still_refused_first(agent) -> None:
    answer = websocket_handshake(agent, "/ws/nothing-here", origin="http://evil.example")
    assert answer.startswith(b"HTTP/1.1 403 "), answer


def test_the_inspector_websocket_still_opens(agent) -> None:
    assert websocket_handshake(agent, "/ws/inspector").startswith(b"HTTP/1.1 101 ")


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [False, True, [], {}, 0, 5, 1.5, ["web"], {"name": "web"}])
def test_a_tunnel_name_that_is_not_a_string_is_refused(agent, name: object) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": name, "addr": "8080"})
    assert_error(response, 400, 102)
    assert "name" in response.json()["details"]["err"]
    assert names(agent) == []


@pytest.mark.parametrize("name", [False, [], {}, 0])
def test_an_endpoint_name_that_is_not_a_string_is_refused(agent, name: object) -> None:
    response = agent.api("POST", "/api/endpoints", {"name": name, "upstream": {"url": "8080"}})
    assert_error(response, 400, 102)
    assert names(agent) == []


@pytest.mark.parametrize("name", [None, ""])
def test_a_null_or_empty_name_still_gets_a_generated_one(agent, name: object) -> None:
    tunnel = agent.start_tunnel(name=name, addr="8080")
    assert tunnel["name"].startswith("http-8080-")


def test_a_long_valid_addr_still_gets_a_generated_name(agent) -> None:
    addr = "http://localhost:8080/" + "p" * 400
    assert len(agent.start_tunnel(addr=addr)["name"]) <= 200


@pytest.mark.parametrize("name", ["a\nb", "a\rb", "a\x00b"])
def test_a_name_with_control_characters_in_the_path_is_refused_or_not_found(agent, name: str) -> None:
    escaped = "".join(f"%{b:02X}" for b in name.encode())
    assert_error(agent.api("PUT", f"/api/endpoints/{escaped}", {"upstream": {"url": "8080"}}), 400, 102)
    assert_error(agent.api("GET", f"/api/tunnels/{escaped}"), 404, 100)
    assert_error(agent.api("DELETE", f"/api/endpoints/{escaped}"), 404, 100)


def test_a_newline_after_a_name_does_not_reach_the_tunnel(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    assert_error(agent.api("GET", "/api/tunnels/web%0A"), 404, 100)
    assert_error(agent.api("DELETE", "/api/tunnels/web%0A"), 404, 100)
    assert names(agent) == ["web"]


# --- addresses and other values ------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1:",
        "localhost:",
        "[::1]:",
        "http://127.0.0.1:",
        "::1:8080",
        "9" * 300,
        "localhost:" + "9" * 300,
        "http://localhost:" + "9" * 300,
        int("9" * 300),
        "a" * 5000,
        "x" * 64 + ".test:80",
    ],
)
def test_an_addr_go_would_refuse_is_refused(agent, addr: object) -> None:
    assert_error(agent.api("POST", "/api/tunnels", {"name": "t", "addr": addr}), 400, 102)
    assert_error(agent.api("POST", "/api/endpoints", {"name": "t", "upstream": {"url": addr}}), 400, 102)
    assert_error(agent.api("PUT", "/api/endpoints/t", {"upstream": {"url": addr}}), 400, 102)
    assert names(agent) == []


@pytest.mark.parametrize("key", ["url", "hostname", "domain"])
@pytest.mark.parametrize("value", ["9" * 300, "127.0.0.1:" + "9" * 300, "[::1]:", "a" * 64 + ".test"])
def test_a_listen_address_go_would_refuse_is_refused(agent, key: str, value: str) -> None:
    assert_error(agent.api("POST", "/api/tunnels", {"name": "t", "addr": "8080", key: value}), 400, 102)
    assert names(agent) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("inspect", "false"),
        ("inspect", 0),
        ("metadata", {"a": 1}),
        ("metadata", "m" * 5000),
        ("description", 5),
        ("schemes", "https"),
        ("bind_tls", 1),
        ("basic_auth", [5]),
        ("basic_auth", ["u:p"] * 1001),
        ("host_header", ["rewrite"]),
        ("ip_restriction", {"allow_cidrs": [5]}),
        ("request_header", {"add": "X-A: b"}),
        ("compression", "gzip"),
        ("response_timeout", "forever"),
        ("response_timeout", 10**30),
        ("response_timeout", True),
        ("response_timeout", 0),
        ("proto", 5),
        ("proto", ["http"]),
    ],
)
def test_a_value_of_the_wrong_type_or_size_is_refused(agent, key: str, value: object) -> None:
    assert_error(agent.api("POST", "/api/tunnels", {"name": "t", "addr": "8080", key: value}), 400, 102)
    endpoint = {"name": "t", "upstream": {"url": "8080"}, key: value}
    assert_error(agent.api("POST", "/api/endpoints", endpoint), 400, 102)
    assert_error(agent.api("PUT", "/api/endpoints/t", endpoint), 400, 102)
    assert names(agent) == []


@pytest.mark.parametrize(
    "body",
    [
        {"upstream": {"url": 8080}},
        {"upstream": {"url": ["8080"]}},
        {"upstream": {"url": "8080", "protocol": 1}},
        {"upstream": {"url": "8080", "proxy_protocol": True}},
        {"upstream": {"url": "8080"}, "url": ["http://"]},
        {"upstream": {"url": "8080"}, "pooling_enabled": "yes"},
        {"upstream": {"url": "8080"}, "traffic_policy": {"on_http_request": []}},
        {"upstream": {"url": "8080"}, "bindings": "public"},
        {"upstream": {"url": "8080"}, "bindings": [5]},
        {"upstream": {"url": "8080"}, "inspect": "no"},
    ],
)
def test_endpoint_keys_of_the_wrong_type_are_refused(agent, body: dict) -> None:
    assert_error(agent.api("POST", "/api/endpoints", {"name": "t", **body}), 400, 102)
    assert_error(agent.api("PUT", "/api/endpoints/t", body), 400, 102)
    assert names(agent) == []


def test_a_bad_put_leaves_the_running_endpoint_alone(agent) -> None:
    agent.api("PUT", "/api/endpoints/t", {"upstream": {"url": "8080"}})
    before = agent.api("GET", "/api/endpoints/t").json()
    assert_error(agent.api("PUT", "/api/endpoints/t", {"upstream": {"url": "127.0.0.1:"}}), 400, 102)
    assert agent.api("GET", "/api/endpoints/t").json()["url"] == before["url"]


def test_no_bad_input_left_a_traceback_in_the_log(agent) -> None:
    # Runs last in this module, on the shared agent: every refusal above was a plain 4xx.
    assert not [line for line in agent.lines if "Traceback" in line or "lvl=eror" in line]
