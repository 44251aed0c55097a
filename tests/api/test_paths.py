"""Paths have no trailing slash except the root; both forms are accepted."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "path", ["/api/tunnels/", "/api/endpoints/", "/api/requests/http/", "/api/status/", "/api/", "/api"]
)
def test_collections_answer_with_or_without_a_trailing_slash(agent, path: str) -> None:
    response = agent.api("GET", path)
    assert response.status_code == 200, response.text
    assert agent.api("GET", path.rstrip("/") or "/api").json() == response.json()


def test_a_tunnel_answers_with_a_trailing_slash(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    assert agent.api("GET", "/api/tunnels/web/").json()["name"] == "web"
    assert agent.api("DELETE", "/api/tunnels/web/").status_code == 204


def test_a_tunnel_starts_with_a_trailing_slash(agent) -> None:
    assert agent.api("POST", "/api/tunnels/", {"name": "web", "addr": "8080"}).status_code == 201


def test_no_redirect_is_given_for_either_form(agent) -> None:
    for path in ("/api/tunnels", "/api/tunnels/"):
        assert agent.api("GET", path, allow_redirects=False).status_code == 200
