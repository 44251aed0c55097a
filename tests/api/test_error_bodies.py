"""Every error is ngrok's body: error_code, status_code, msg, details (in that order), then a newline."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error


def test_a_400_body_is_exactly_the_four_keys_and_a_newline(agent) -> None:
    response = agent.api("POST", "/api/tunnels", {"name": "x", "proto": "https", "addr": "80"})
    assert response.text == (
        '{"error_code":102,"status_code":400,"msg":"invalid tunnel configuration",'
        '"details":{"err":"Invalid protocol name \'https\'"}}\n'
    )


def test_a_404_body_has_the_shape(agent) -> None:
    assert_error(agent.api("GET", "/api/tunnels/nope"), 404, 100)


@pytest.mark.parametrize(
    "path", ["/api/nope", "/api/tunnels/x/y/z/", "/api/requests/http/a/b", "/api/requests", "/api/status/more"]
)
def test_an_unknown_api_path_is_404_in_the_error_shape(agent, path: str) -> None:
    assert_error(agent.api("GET", path), 404, 100)


def test_an_unknown_api_path_is_404_for_every_method(agent) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        assert_error(agent.api(method, "/api/nope", {}), 404, 100)


def test_a_method_the_resource_lacks_is_405_in_the_error_shape(agent) -> None:
    response = agent.api("PATCH", "/api/tunnels", {})
    assert_error(response, 405, 100)
    assert response.headers["Allow"]


def test_a_405_on_the_status_resource_has_the_shape(agent) -> None:
    assert_error(agent.api("POST", "/api/status", {}), 405, 100)


def test_errors_escape_html_characters_like_go(agent) -> None:
    response = agent.api("GET", "/api/tunnels/%3Cb%3E")
    assert "\\u003cb\\u003e" in response.text
    assert_error(response, 404, 100, 'tunnel "<b>" not found')
