"""/api/status and the /api/ root."""

from __future__ import annotations

import re


def test_status_is_online_with_the_agents_keys_in_order(agent) -> None:
    response = agent.api("GET", "/api/status")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["status", "agent_version", "session", "uri"]
    assert body["status"] == "online"
    assert re.fullmatch(r"3\.\d+\.\d+", body["agent_version"])
    assert body["uri"] == "/api/status"


def test_status_has_one_session_leg_with_a_go_duration_latency(agent) -> None:
    [leg] = agent.api("GET", "/api/status").json()["session"]["legs"]
    assert list(leg) == ["region", "latency"]
    assert leg["region"]
    assert re.fullmatch(r"\d+(\.\d+)?(ns|µs|ms|s)", leg["latency"])


def test_root_lists_the_resources_with_their_uris(agent) -> None:
    body = agent.api("GET", "/api/").json()
    assert body["uri"] == "/api/"
    uris = {value["uri"] for key, value in body.items() if key != "uri"}
    assert uris == {"/api/tunnels", "/api/endpoints", "/api/requests/http", "/api/status", "/api/schema"}


def test_every_uri_in_the_root_answers(agent) -> None:
    body = agent.api("GET", "/api/").json()
    for key, value in body.items():
        if key != "uri":
            assert agent.api("GET", value["uri"]).status_code == 200, value["uri"]
