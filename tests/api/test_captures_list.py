"""GET /api/requests/http: captured requests, newest first, with `limit` and `tunnel_name`."""

from __future__ import annotations

import pytest
import requests

from tests.api.helpers import CAPTURE_KEYS, assert_error, captures, wait_for_captures


def send(tunnel: dict, *paths: str) -> None:
    with requests.Session() as session:
        for path in paths:
            assert session.get(tunnel["public_url"] + path, timeout=10).status_code == 200


def test_an_empty_store_lists_no_requests(agent) -> None:
    response = agent.api("GET", "/api/requests/http")
    assert response.status_code == 200
    assert response.text == '{"uri":"/api/requests/http","requests":[]}\n'


def test_the_list_has_uri_then_requests(agent, http_tunnel) -> None:
    send(http_tunnel, "/a")
    wait_for_captures(agent, 1)
    assert list(agent.api("GET", "/api/requests/http").json()) == ["uri", "requests"]


def test_requests_come_newest_first(agent, http_tunnel) -> None:
    send(http_tunnel, "/first", "/second", "/third")
    found = wait_for_captures(agent, 3)
    assert [c["request"]["uri"] for c in found] == ["/third", "/second", "/first"]
    assert [c["id"] for c in found] == sorted((c["id"] for c in found), reverse=True)


def test_each_listed_request_is_the_full_capture(agent, http_tunnel) -> None:
    send(http_tunnel, "/a")
    [listed] = wait_for_captures(agent, 1)
    assert list(listed) == CAPTURE_KEYS
    assert agent.api("GET", listed["uri"]).json() == listed


def test_limit_keeps_the_newest(agent, http_tunnel) -> None:
    send(http_tunnel, "/1", "/2", "/3", "/4")
    wait_for_captures(agent, 4)
    assert [c["request"]["uri"] for c in captures(agent, limit=2)] == ["/4", "/3"]
    assert len(captures(agent, limit=100)) == 4


def test_tunnel_name_filters_by_tunnel(agent, upstream) -> None:
    web = agent.start_tunnel(name="web", addr=str(upstream.port))
    api = agent.start_tunnel(name="api (1)", addr=str(upstream.port))
    send(web, "/w1", "/w2")
    send(api, "/a1")
    wait_for_captures(agent, 3)
    assert [c["request"]["uri"] for c in captures(agent, tunnel_name="web")] == ["/w2", "/w1"]
    assert [c["request"]["uri"] for c in captures(agent, tunnel_name="api (1)")] == ["/a1"]
    assert [c["tunnel_name"] for c in captures(agent, tunnel_name="api (1)")] == ["api (1)"]


def test_tunnel_name_and_limit_combine(agent, http_tunnel) -> None:
    send(http_tunnel, "/1", "/2", "/3")
    wait_for_captures(agent, 3)
    assert [c["request"]["uri"] for c in captures(agent, tunnel_name="web", limit=1)] == ["/3"]


def test_an_unknown_tunnel_name_gives_200_and_an_empty_list(agent, http_tunnel) -> None:
    send(http_tunnel, "/a")
    wait_for_captures(agent, 1)
    response = agent.api("GET", "/api/requests/http", params={"tunnel_name": "nope"})
    assert response.status_code == 200
    assert response.json() == {"uri": "/api/requests/http", "requests": []}


@pytest.mark.parametrize("limit", ["abc", "0", "-3", "1.5"])
def test_a_bad_limit_is_400_in_the_error_shape(agent, limit: str) -> None:
    assert_error(agent.api("GET", "/api/requests/http", params={"limit": limit}), 400, 100)


def test_a_tunnel_with_inspect_false_is_not_captured(agent, upstream) -> None:
    quiet = agent.start_tunnel(name="quiet", addr=str(upstream.port), inspect=False)
    loud = agent.start_tunnel(name="loud", addr=str(upstream.port))
    send(quiet, "/quiet")
    send(loud, "/loud")
    assert [c["tunnel_name"] for c in wait_for_captures(agent, 1)] == ["loud"]


def test_a_request_is_listed_as_soon_as_its_response_arrived(agent, http_tunnel) -> None:
    # pyngrok and npm list right after a request, without waiting.
    with requests.Session() as session:
        for n in range(20):
            session.get(http_tunnel["public_url"] + f"/now/{n}", timeout=10)
            newest = captures(agent, limit=1)
            assert newest and newest[0]["request"]["uri"] == f"/now/{n}"
            assert newest[0]["response"]["status_code"] == 200
