"""Captures carry what the endpoint's Traffic Policy did (`traffic_policy`, ours), and replay may go
through the policy (`through_policy`, ours).

The first tests read rows stored directly through the API views in-process; the last drive a real
agent whose tunnel has a basic-auth policy.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client

from agentapi.models import Capture

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
