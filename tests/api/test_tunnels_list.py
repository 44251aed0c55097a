"""GET /api/tunnels: every running tunnel, then the list's own uri."""

from __future__ import annotations

from tests.api.helpers import TUNNEL_KEYS


def test_an_agent_without_tunnels_lists_none(agent) -> None:
    response = agent.api("GET", "/api/tunnels")
    assert response.status_code == 200
    assert response.text == '{"tunnels":[],"uri":"/api/tunnels"}\n'


def test_the_list_has_tunnels_then_uri(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    body = agent.api("GET", "/api/tunnels").json()
    assert list(body) == ["tunnels", "uri"]
    assert body["uri"] == "/api/tunnels"


def test_each_tunnel_in_the_list_is_the_same_object_as_its_detail(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    agent.start_tunnel(name="ssh", proto="tcp", addr="22")
    listed = agent.api("GET", "/api/tunnels").json()["tunnels"]
    assert [t["name"] for t in listed] == ["web", "ssh"]
    for tunnel in listed:
        assert list(tunnel) == TUNNEL_KEYS
        assert agent.api("GET", tunnel["uri"]).json() == tunnel


def test_a_stopped_tunnel_leaves_the_list(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    agent.start_tunnel(name="api", addr="8081")
    agent.api("DELETE", "/api/tunnels/web")
    assert [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]] == ["api"]
