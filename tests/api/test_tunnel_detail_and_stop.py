"""GET and DELETE /api/tunnels/:name, names percent-encoded in the path."""

from __future__ import annotations

import pytest
import requests

from tests.api.helpers import assert_error


def test_detail_answers_200_with_the_tunnel(agent) -> None:
    started = agent.start_tunnel(name="web", addr="8080")
    response = agent.api("GET", "/api/tunnels/web")
    assert response.status_code == 200
    assert response.json() == started


def test_detail_of_an_unknown_tunnel_is_404(agent) -> None:
    body = assert_error(agent.api("GET", "/api/tunnels/nope"), 404, 100, 'tunnel "nope" not found')
    assert body["msg"]


@pytest.mark.parametrize(
    "path", ["/api/tunnels/a%20b", "/api/tunnels/a b", "/api/tunnels/a%20b/", "/api/tunnels/%61%20%62"]
)
def test_a_percent_encoded_name_finds_the_tunnel(agent, path: str) -> None:
    agent.start_tunnel(name="a b", addr="8080")
    response = agent.api("GET", path)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "a b"


def test_parentheses_may_come_escaped_or_not(agent) -> None:
    # pyngrok uses the server's uri (escaped); npm puts the raw name in the path.
    agent.start_tunnel(name="web (http)", addr="8080")
    assert agent.api("GET", "/api/tunnels/web%20%28http%29").status_code == 200
    assert agent.api("GET", "/api/tunnels/web%20(http)").status_code == 200


def test_stop_answers_204_with_an_empty_body(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    response = agent.api("DELETE", "/api/tunnels/web")
    assert response.status_code == 204
    assert response.content == b""
    assert agent.api("GET", "/api/tunnels/web").status_code == 404


def test_stop_closes_the_public_listener(agent, upstream) -> None:
    tunnel = agent.start_tunnel(name="web", addr=str(upstream.port))
    agent.api("DELETE", "/api/tunnels/web")
    with pytest.raises(requests.ConnectionError):
        requests.get(tunnel["public_url"], timeout=5)


def test_stop_of_an_unknown_tunnel_is_404(agent) -> None:
    assert_error(agent.api("DELETE", "/api/tunnels/nope"), 404, 100, 'tunnel "nope" not found')


def test_stopping_twice_gives_204_then_404(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    assert agent.api("DELETE", "/api/tunnels/web").status_code == 204
    assert agent.api("DELETE", "/api/tunnels/web").status_code == 404


def test_stop_by_a_percent_encoded_name(agent) -> None:
    tunnel = agent.start_tunnel(name="my app (1)", addr="8080")
    assert agent.api("DELETE", tunnel["uri"]).status_code == 204
    assert agent.api("GET", "/api/tunnels").json()["tunnels"] == []


def test_a_stopped_name_can_be_used_again(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    agent.api("DELETE", "/api/tunnels/web")
    assert agent.start_tunnel(name="web", addr="9090")["config"]["addr"] == "http://localhost:9090"


def test_put_on_a_tunnel_is_405_in_the_error_shape(agent) -> None:
    agent.start_tunnel(name="web", addr="8080")
    response = agent.api("PUT", "/api/tunnels/web", {"addr": "9090"})
    assert_error(response, 405, 100)
    assert "GET" in response.headers["Allow"] and "DELETE" in response.headers["Allow"]
