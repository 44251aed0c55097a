"""POST /api/tunnels: 201 with the tunnel object, keys in the agent's order."""

from __future__ import annotations

import re

import requests

from tests.api.helpers import CONNS_KEYS, HTTP_KEYS, TUNNEL_KEYS
from tests.support.upstream import Upstream

ZERO_CONNS = dict.fromkeys(CONNS_KEYS, 0)
ZERO_HTTP = dict.fromkeys(HTTP_KEYS, 0)


def test_it_answers_201_with_the_tunnel(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "web", "proto": "http", "addr": str(upstream.port)})
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    tunnel = response.json()
    assert tunnel["name"] == "web"
    assert tunnel["uri"] == "/api/tunnels/web"
    assert tunnel["proto"] == "http"
    assert tunnel["config"] == {"addr": f"http://localhost:{upstream.port}", "inspect": True}


def test_keys_come_in_the_agents_order(agent, upstream: Upstream) -> None:
    tunnel = agent.start_tunnel(name="web", addr=str(upstream.port))
    assert list(tunnel) == TUNNEL_KEYS
    assert list(tunnel["config"]) == ["addr", "inspect"]
    assert list(tunnel["metrics"]) == ["conns", "http"]
    assert list(tunnel["metrics"]["conns"]) == CONNS_KEYS
    assert list(tunnel["metrics"]["http"]) == HTTP_KEYS


def test_a_new_tunnel_has_zero_metrics_written_as_integers(agent, upstream: Upstream) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "web", "addr": str(upstream.port)})
    assert response.json()["metrics"] == {"conns": ZERO_CONNS, "http": ZERO_HTTP}
    assert '"rate1":0,' in response.text
    assert ".0" not in response.text.partition('"metrics"')[2]


def test_id_is_32_lower_case_hex_digits_and_differs_per_tunnel(agent) -> None:
    first = agent.start_tunnel(name="one", addr="8001")
    second = agent.start_tunnel(name="two", addr="8002")
    assert re.fullmatch(r"[0-9a-f]{32}", first["ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", second["ID"])
    assert first["ID"] != second["ID"]


def test_public_url_answers_through_the_tunnel(agent, upstream: Upstream) -> None:
    tunnel = agent.start_tunnel(name="web", addr=str(upstream.port))
    assert tunnel["public_url"].startswith("http://")
    assert requests.get(tunnel["public_url"] + "/status/201", timeout=10).status_code == 201


def test_tcp_tunnel_reports_tcp_and_has_both_metric_blocks(agent) -> None:
    tunnel = agent.start_tunnel(name="ssh", proto="tcp", addr="22")
    assert tunnel["proto"] == "tcp"
    assert tunnel["public_url"].startswith("tcp://")
    assert tunnel["config"] == {"addr": "localhost:22", "inspect": False}
    assert tunnel["metrics"] == {"conns": ZERO_CONNS, "http": ZERO_HTTP}


def test_tls_tunnel_reports_tls(agent) -> None:
    tunnel = agent.start_tunnel(name="secure", proto="tls", addr="8443")
    assert tunnel["proto"] == "tls"
    assert tunnel["public_url"].startswith("tls://")
    assert tunnel["config"]["inspect"] is False


def test_inspect_false_is_kept(agent) -> None:
    tunnel = agent.start_tunnel(name="quiet", addr="8080", inspect=False)
    assert tunnel["config"]["inspect"] is False


def test_uri_escapes_spaces_and_parentheses_like_go(agent) -> None:
    tunnel = agent.start_tunnel(name="my app (1)", addr="8080")
    assert tunnel["name"] == "my app (1)"
    assert tunnel["uri"] == "/api/tunnels/my%20app%20%281%29"


def test_uri_escapes_what_go_escapes_in_a_path_segment(agent) -> None:
    tunnel = agent.start_tunnel(name="a,b;c?d!e*f'g", addr="8080")
    assert tunnel["uri"] == "/api/tunnels/a%2Cb%3Bc%3Fd%21e%2Af%27g"


def test_uri_keeps_what_go_keeps(agent) -> None:
    tunnel = agent.start_tunnel(name="a-b_c.d~e$f&g+h:i=j@k", addr="8080")
    assert tunnel["uri"] == "/api/tunnels/a-b_c.d~e$f&g+h:i=j@k"


def test_uri_escapes_non_ascii_as_utf_8(agent) -> None:
    tunnel = agent.start_tunnel(name="café", addr="8080")
    assert tunnel["uri"] == "/api/tunnels/caf%C3%A9"


def test_the_escaped_uri_leads_back_to_the_tunnel(agent) -> None:
    for name in ("my app (1)", "a,b;c?d", "50% off", "café", "a/b"):
        tunnel = agent.start_tunnel(name=name, addr="8080")
        response = agent.api("GET", tunnel["uri"])
        assert response.status_code == 200, (name, response.text)
        assert response.json()["name"] == name


def test_a_missing_name_gets_a_generated_one(agent) -> None:
    response = agent.api("POST", "/api/tunnels", {"addr": "8080"})
    assert response.status_code == 201
    name = response.json()["name"]
    assert name
    assert agent.api("GET", response.json()["uri"]).json()["name"] == name


def test_an_empty_name_gets_a_generated_one(agent) -> None:
    first = agent.api("POST", "/api/tunnels", {"addr": "8080", "name": ""})
    second = agent.api("POST", "/api/tunnels", {"addr": "8080", "name": ""})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["name"] and second.json()["name"]
    assert first.json()["name"] != second.json()["name"]


def test_a_null_name_gets_a_generated_one(agent) -> None:
    response = agent.api("POST", "/api/tunnels", {"addr": "8080", "name": None})
    assert response.status_code == 201
    assert response.json()["name"]


def test_auth_is_the_2x_spelling_of_basic_auth(agent, upstream: Upstream) -> None:
    # Passwords of 8 to 128 characters, as ngrok's basic-auth action (and its old flag) require.
    tunnel = agent.start_tunnel(name="private", addr=str(upstream.port), auth="user:password")
    assert requests.get(tunnel["public_url"] + "/x", timeout=10).status_code == 401
    allowed = requests.get(tunnel["public_url"] + "/x", auth=("user", "password"), timeout=10)
    assert allowed.status_code == 200


def test_bind_tls_false_gives_one_http_tunnel(agent, upstream: Upstream) -> None:
    tunnel = agent.start_tunnel(name="plain", addr=str(upstream.port), bind_tls=False)
    assert tunnel["proto"] == "http"
    assert tunnel["public_url"].startswith("http://")
    assert [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]] == ["plain"]


def test_schemes_http_gives_an_http_tunnel(agent, upstream: Upstream) -> None:
    tunnel = agent.start_tunnel(name="plain", addr=str(upstream.port), schemes=["http"])
    assert tunnel["proto"] == "http"


def test_npm_client_options_are_ignored(agent) -> None:
    # npm `ngrok` posts its whole options object, cloud settings and its own options included.
    body = {"proto": "http", "addr": 8080, "name": "npm", "authtoken": "x", "region": "us", "configPath": "/x"}
    response = agent.api("POST", "/api/tunnels", body)
    assert response.status_code == 201, response.text
