"""Request bodies must be JSON: anything else is refused before the agent acts on it."""

from __future__ import annotations

import pytest
import requests

from tests.api.helpers import assert_error, wait_for_captures
from tests.support.agent_process import AgentProcess

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TEXT = {"Content-Type": "text/plain"}
JSON = {"Content-Type": "application/json"}


def tunnel_names(agent: AgentProcess) -> list[str]:
    return [t["name"] for t in agent.api("GET", "/api/tunnels").json()["tunnels"]]


def test_a_form_encoded_start_is_refused_and_nothing_starts(agent) -> None:
    response = agent.api("POST", "/api/tunnels", data="name=x&addr=8080", headers=FORM)
    body = assert_error(response, 415, 100)
    assert "application/x-www-form-urlencoded" in body["details"]["err"]
    assert tunnel_names(agent) == []


def test_a_text_plain_start_with_json_inside_is_refused_and_nothing_starts(agent) -> None:
    # What a cross-site <form enctype="text/plain"> can send.
    response = agent.api("POST", "/api/tunnels", data='{"name": "x", "addr": "8080"}', headers=TEXT)
    assert_error(response, 415, 100)
    assert tunnel_names(agent) == []


def test_a_multipart_start_is_refused(agent) -> None:
    response = agent.api("POST", "/api/tunnels", files={"addr": ("addr", b"8080")}, data={"name": "x"})
    assert_error(response, 415, 100)
    assert tunnel_names(agent) == []


def test_a_body_without_content_type_is_refused(agent) -> None:
    response = agent.api("POST", "/api/tunnels", data=b'{"name": "x", "addr": "8080"}', headers={"Content-Type": ""})
    assert_error(response, 415, 100)
    assert tunnel_names(agent) == []


def test_a_form_encoded_stop_is_refused_and_the_tunnel_keeps_running(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    assert_error(agent.api("DELETE", "/api/tunnels/web", data="x=1", headers=FORM), 415, 100)
    assert tunnel_names(agent) == ["web"]


def test_a_form_encoded_delete_all_is_refused_and_captures_stay(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/kept", timeout=10)
    wait_for_captures(agent, 1)
    assert_error(agent.api("DELETE", "/api/requests/http", data="x=1", headers=FORM), 415, 100)
    assert len(wait_for_captures(agent, 1)) == 1


def test_a_text_plain_replay_is_refused_and_nothing_is_replayed(agent, upstream, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/once", timeout=10)
    [capture] = wait_for_captures(agent, 1)
    response = agent.api("POST", "/api/requests/http", data=f'{{"id": "{capture["id"]}"}}', headers=TEXT)
    assert_error(response, 415, 100)
    assert [r.path for r in upstream.received] == ["/once"]


def test_a_form_encoded_put_is_refused(agent) -> None:
    response = agent.api("PUT", "/api/endpoints/web", data="upstream=8080", headers=FORM)
    assert_error(response, 415, 100)
    assert tunnel_names(agent) == []


@pytest.mark.parametrize("path", ["/api/tunnels", "/api/requests/http", "/api/endpoints", "/api/status", "/api/"])
def test_a_get_with_a_json_content_type_and_no_body_works(agent, path: str) -> None:
    # pyngrok sends Content-Type: application/json on every request.
    assert agent.api("GET", path, headers=JSON).status_code == 200


def test_a_bodiless_delete_with_a_json_content_type_works(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    assert agent.api("DELETE", "/api/tunnels/web", headers=JSON).status_code == 204


def test_a_delete_with_an_empty_json_object_works(agent) -> None:
    # npm `ngrok` sends DELETE with a {} body.
    agent.start_tunnel(name="web", addr="8080")
    assert agent.api("DELETE", "/api/tunnels/web", json={}).status_code == 204
    assert agent.api("DELETE", "/api/requests/http", json={}).status_code == 204


def test_a_json_content_type_with_a_charset_is_accepted(agent) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = agent.api("POST", "/api/tunnels", data=b'{"name": "x", "addr": "8080"}', headers=headers)
    assert response.status_code == 201, response.text


def test_a_get_without_a_content_type_works(agent) -> None:
    assert agent.api("GET", "/api/tunnels").status_code == 200


def test_responses_are_application_json(agent) -> None:
    assert agent.api("GET", "/api/tunnels").headers["Content-Type"] == "application/json"
