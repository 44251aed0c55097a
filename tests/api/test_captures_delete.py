"""DELETE /api/requests/http: forget every capture."""

from __future__ import annotations

import requests

from tests.api.helpers import captures, wait_for_captures


def test_delete_all_answers_204_and_empties_the_list(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/a", timeout=10)
    requests.get(http_tunnel["public_url"] + "/b", timeout=10)
    [newest, _] = wait_for_captures(agent, 2)
    response = agent.api("DELETE", "/api/requests/http")
    assert response.status_code == 204
    assert response.content == b""
    assert captures(agent) == []
    assert agent.api("GET", newest["uri"]).status_code == 404


def test_delete_all_answers_204_when_there_is_nothing(agent) -> None:
    response = agent.api("DELETE", "/api/requests/http")
    assert response.status_code == 204
    assert response.content == b""


def test_capture_goes_on_after_delete_all(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/before", timeout=10)
    wait_for_captures(agent, 1)
    agent.api("DELETE", "/api/requests/http")
    requests.get(http_tunnel["public_url"] + "/after", timeout=10)
    assert [c["request"]["uri"] for c in wait_for_captures(agent, 1)] == ["/after"]
