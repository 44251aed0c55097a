"""Captures carry what the endpoint's Traffic Policy did (`traffic_policy`, ours), and replay may go
through the policy (`through_policy`, ours).

The first tests read rows stored directly through the API views in-process; the last drive a real
agent whose tunnel has a basic-auth policy.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
import requests
from django.test import Client

from agentapi.models import Capture
from tests.api.helpers import wait_for_captures
from tests.support.agent_process import AgentProcess
from tests.support.upstream import Upstream

STEP_KEYS = ["phase", "rule", "action", "outcome", "terminal"]
REFUSED = [
    {"phase": "on_http_request", "rule": "tag", "action": "add-headers", "outcome": "x-env", "terminal": False},
    {"phase": "on_http_request", "rule": "auth", "action": "basic-auth", "outcome": "refused 401", "terminal": True},
]


@pytest.fixture
def api() -> Client:
    return Client(HTTP_HOST="127.0.0.1:4040")


def stored(capture_id: str, trace: list[dict[str, Any]], status: int = 200) -> Capture:
    request = b"GET /private HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n"
    response = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode()
    answered = [step["action"] for step in trace if step["terminal"]]
    return Capture.objects.create(
        id=capture_id,
        tunnel_name="guarded",
        remote_addr="127.0.0.1",
        start=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        method="GET",
        uri="/private",
        request_raw=request,
        request_size=len(request),
        response_raw=response,
        response_size=len(response),
        status_code=status,
        stored_size=len(request) + len(response),
        policy_trace=trace,
        policy_action=answered[-1] if answered else "",
    )


@pytest.mark.django_db
def test_a_stored_trace_is_in_the_capture_step_by_step(api) -> None:
    stored("airt_2refused", REFUSED, status=401)
    capture = api.get("/api/requests/http/airt_2refused").json()
    assert capture["traffic_policy"] == REFUSED
    assert [list(step) for step in capture["traffic_policy"]] == [STEP_KEYS, STEP_KEYS]
    # Beside ngrok's keys, after our other addition.
    keys = list(capture)
    assert keys.index("traffic_policy") == keys.index("incomplete_reason") + 1


@pytest.mark.django_db
def test_the_list_carries_each_captures_trace(api) -> None:
    stored("airt_1plain", [])
    stored("airt_2refused", REFUSED, status=401)
    listed = api.get("/api/requests/http").json()["requests"]
    assert [(c["id"], c["traffic_policy"]) for c in listed] == [("airt_2refused", REFUSED), ("airt_1plain", [])]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["yes", 1, {}])
def test_replay_refuses_a_through_policy_that_is_not_a_boolean(api, value: object) -> None:
    stored("airt_2refused", REFUSED, status=401)
    response = api.post(
        "/api/requests/http", json.dumps({"id": "airt_2refused", "through_policy": value}), "application/json"
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["error_code"], body["details"]["err"]) == (100, "through_policy must be true or false")


# --- a real agent -------------------------------------------------------------------------------
BASIC_AUTH = json.dumps(
    {
        "on_http_request": [
            {"name": "auth", "actions": [{"type": "basic-auth", "config": {"credentials": ["user:password1"]}}]}
        ]
    }
)
GOOD = "Basic " + base64.b64encode(b"user:password1").decode()


@pytest.fixture
def guarded(agent: AgentProcess, upstream: Upstream) -> dict[str, Any]:
    """An http tunnel whose Traffic Policy asks for basic auth (ngrok's documented example)."""
    return agent.start_tunnel(name="guarded", proto="http", addr=str(upstream.port), traffic_policy=BASIC_AUTH)


def test_a_refused_and_an_admitted_request_are_both_captured_with_their_steps(agent, upstream, guarded) -> None:
    url = guarded["public_url"]
    refused = requests.get(url + "/private", timeout=10)
    admitted = requests.get(url + "/private", headers={"Authorization": GOOD}, timeout=10)
    assert (refused.status_code, admitted.status_code) == (401, 200)
    assert len(upstream.received) == 1  # the refused request never reached the service
    second, first = wait_for_captures(agent, 2)
    assert first["response"]["status_code"] == 401
    [step] = first["traffic_policy"]
    assert list(step) == STEP_KEYS
    assert (step["phase"], step["rule"], step["action"], step["terminal"]) == (
        "on_http_request",
        "auth",
        "basic-auth",
        True,
    )
    assert "401" in step["outcome"]
    assert second["response"]["status_code"] == 200
    assert [s["action"] for s in second["traffic_policy"]] == ["basic-auth"]
    assert not any(s["terminal"] for s in second["traffic_policy"])
    # The detail says the same as the list.
    assert agent.api("GET", first["uri"]).json()["traffic_policy"] == first["traffic_policy"]


def test_a_tunnel_without_a_policy_captures_an_empty_trace(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/open", timeout=10)
    [capture] = wait_for_captures(agent, 1)
    assert capture["traffic_policy"] == []


def test_replay_bypasses_the_policy_unless_asked_to_go_through_it(agent, upstream, guarded) -> None:
    requests.get(guarded["public_url"] + "/private", timeout=10)
    [refused] = wait_for_captures(agent, 1)
    assert agent.api("POST", "/api/requests/http", {"id": refused["id"]}).status_code == 204
    [bypassed, _] = wait_for_captures(agent, 2)
    # As ngrok's inspector: straight to the service, which answers; no policy step ran.
    assert (bypassed["response"]["status_code"], bypassed["traffic_policy"]) == (200, [])
    assert len(upstream.received) == 1
    body = {"id": refused["id"], "through_policy": True}
    assert agent.api("POST", "/api/requests/http", body).status_code == 204
    [through, _, _] = wait_for_captures(agent, 3)
    assert through["response"]["status_code"] == 401
    assert [(s["action"], s["terminal"]) for s in through["traffic_policy"]] == [("basic-auth", True)]
    assert len(upstream.received) == 1  # refused again, before the service
