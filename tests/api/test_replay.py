"""POST /api/requests/http: replay a capture against a tunnel's local service."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.api.helpers import assert_error, captures, wait_for_captures
from tests.support.agent_process import AgentProcess


@pytest.fixture
def original(agent: AgentProcess, http_tunnel: dict[str, Any]) -> dict[str, Any]:
    requests.post(http_tunnel["public_url"] + "/echo?n=1", data=b"\x00body\xff", timeout=10)
    [capture] = wait_for_captures(agent, 1)
    return capture


def test_replay_answers_204_with_an_empty_body(agent, original) -> None:
    response = agent.api("POST", "/api/requests/http", {"id": original["id"]})
    assert response.status_code == 204
    assert response.content == b""


def test_the_replay_is_listed_as_soon_as_replay_answers(agent, original) -> None:
    agent.api("POST", "/api/requests/http", {"id": original["id"]})
    newest, oldest = captures(agent)
    assert oldest["id"] == original["id"]
    assert newest["id"] > original["id"]
    assert newest["response"]["status_code"] == 200


def test_the_replay_sends_the_stored_bytes_to_the_local_service(agent, upstream, original) -> None:
    agent.api("POST", "/api/requests/http", {"id": original["id"]})
    first, again = upstream.received
    assert (again.method, again.path, again.body) == ("POST", "/echo?n=1", b"\x00body\xff")
    assert again.headers == first.headers
    assert captures(agent)[0]["request"]["raw"] == original["request"]["raw"]


def test_replay_without_a_tunnel_name_uses_the_original_tunnel(agent, original) -> None:
    agent.api("POST", "/api/requests/http", {"id": original["id"]})
    assert [c["tunnel_name"] for c in captures(agent)] == ["web", "web"]


def test_pyngroks_null_tunnel_name_uses_the_original_tunnel(agent, original) -> None:
    response = agent.api("POST", "/api/requests/http", {"id": original["id"], "tunnel_name": None})
    assert response.status_code == 204
    assert [c["tunnel_name"] for c in captures(agent)] == ["web", "web"]


def test_tunnel_name_replays_against_another_tunnel(agent, upstream, original) -> None:
    agent.start_tunnel(name="other (1)", addr=str(upstream.port))
    response = agent.api("POST", "/api/requests/http", {"id": original["id"], "tunnel_name": "other (1)"})
    assert response.status_code == 204
    assert captures(agent)[0]["tunnel_name"] == "other (1)"
    assert [c["id"] for c in captures(agent, tunnel_name="other (1)")] == [captures(agent)[0]["id"]]


def test_npms_camel_case_tunnel_name_is_understood(agent, upstream, original) -> None:
    agent.start_tunnel(name="other", addr=str(upstream.port))
    response = agent.api("POST", "/api/requests/http", {"id": original["id"], "tunnelName": "other"})
    assert response.status_code == 204
    assert captures(agent)[0]["tunnel_name"] == "other"


def test_replay_of_an_unknown_id_is_404(agent) -> None:
    assert_error(
        agent.api("POST", "/api/requests/http", {"id": "airt_nope"}), 404, 100, 'request "airt_nope" not found'
    )


def test_replay_to_an_unknown_tunnel_is_404(agent, original) -> None:
    body = {"id": original["id"], "tunnel_name": "nope"}
    assert_error(agent.api("POST", "/api/requests/http", body), 404, 100, 'tunnel "nope" not found')
    assert len(captures(agent)) == 1


@pytest.mark.parametrize("body", [{}, {"id": 5}, ["airt_x"], {"tunnel_name": "web"}])
def test_replay_without_an_id_is_400(agent, body: object) -> None:
    assert_error(agent.api("POST", "/api/requests/http", body), 400, 100)


def test_a_request_can_be_replayed_right_after_its_response(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/quick", timeout=10)
    newest = captures(agent, limit=1)[0]
    assert agent.api("POST", "/api/requests/http", {"id": newest["id"]}).status_code == 204


def test_replay_into_a_tcp_tunnel_is_refused(agent, original) -> None:
    agent.api("POST", "/api/tunnels", {"name": "raw", "proto": "tcp", "addr": "1"})
    try:
        response = agent.api("POST", "/api/requests/http", {"id": original["id"], "tunnel_name": "raw"})
        assert response.status_code == 400
        assert "only http tunnels replay" in response.json()["details"]["err"]
    finally:
        agent.api("DELETE", "/api/tunnels/raw")
