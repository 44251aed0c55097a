from __future__ import annotations

import requests

from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream


def captures(agent: AgentProcess) -> list[dict]:
    return agent.api("GET", "/api/requests/http").json()["requests"]


def test_a_request_reaches_the_upstream_with_forwarding_headers(agent, upstream: Upstream, http_tunnel) -> None:
    response = requests.post(http_tunnel["public_url"] + "/echo?x=1", data=b"hello", timeout=10)
    assert response.status_code == 200
    assert response.content == b"hello"
    got = upstream.received[-1]
    assert (got.method, got.path, got.body) == ("POST", "/echo?x=1", b"hello")
    assert got.header("X-Forwarded-For") == "127.0.0.1"
    assert got.header("X-Forwarded-Proto") == "http"
    assert got.header("X-Forwarded-Host") == http_tunnel["public_url"].removeprefix("http://")
