"""The inspector shows the Traffic Policy at work: each capture's steps in its detail, the filter
that finds what a policy answered, each tunnel's policy on the status page, replay through it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from agentapi.models import Capture, Tunnel
from agentapi.runtime import TunnelInfo
from dashboard.inspector.tunnel_status import tunnel_info

REFUSED = [
    {"phase": "on_http_request", "rule": "tag", "action": "add-headers", "outcome": "x-env", "terminal": False},
    {"phase": "on_http_request", "rule": "auth", "action": "basic-auth", "outcome": "refused 401", "terminal": True},
]
PASSED = [{"phase": "on_http_request", "rule": "tag", "action": "add-headers", "outcome": "x-env", "terminal": False}]
LIMITED = [
    {
        "phase": "on_http_request",
        "rule": "limit",
        "action": "rate-limit",
        "outcome": "429, bucket 1.2.3.4",
        "terminal": True,
    }
]
POLICY = "on_http_request:\n  - actions:\n      - type: basic-auth\n"


@pytest.fixture
def with_trace(make_capture: Callable[..., Capture]) -> Callable[..., Capture]:
    """A stored capture carrying a policy trace (as the capture store writes it)."""

    def make(trace: list[dict[str, Any]], *, status: int = 200, **fields: Any) -> Capture:
        capture = make_capture(status=status, **fields)
        answered = [step["action"] for step in trace if step["terminal"]]
        capture.policy_trace = trace
        capture.policy_action = answered[-1] if answered else ""
        capture.save(update_fields=["policy_trace", "policy_action"])
        return capture

    return make


def ids(client: Client, query: str) -> list[str]:
    response = client.get("/inspect/captures.json" + query)
    assert response.status_code == 200
    return [capture["id"] for capture in response.json()["captures"]]


# --- the detail ---------------------------------------------------------------------------------
def test_the_detail_lists_each_step_in_the_order_it_ran(client, with_trace) -> None:
    capture = with_trace(REFUSED, status=401)
    detail = client.get(f"/inspect/captures/{capture.id}.json").json()
    assert detail["traffic_policy"] == REFUSED


def test_a_capture_without_a_policy_has_no_steps(client, make_capture) -> None:
    capture = make_capture()
    assert client.get(f"/inspect/captures/{capture.id}.json").json()["traffic_policy"] == []


# --- the filter ---------------------------------------------------------------------------------
def test_blocked_finds_every_capture_a_policy_answered_and_nothing_else(client, make_capture, with_trace) -> None:
    refused = with_trace(REFUSED, status=401)
    passed = with_trace(PASSED)
    limited = with_trace(LIMITED, status=429)
    plain = make_capture()
    assert ids(client, "?policy=blocked") == [limited.id, refused.id]
    assert set(ids(client, "")) == {refused.id, passed.id, limited.id, plain.id}


def test_an_action_finds_the_captures_it_answered(client, with_trace) -> None:
    refused = with_trace(REFUSED, status=401)
    limited = with_trace(LIMITED, status=429)
    with_trace(PASSED)
    assert ids(client, "?policy=rate-limit") == [limited.id]
    assert ids(client, "?policy=basic-auth,rate-limit") == [limited.id, refused.id]
    # add-headers ran, but let the request through: it answered nothing.
    assert ids(client, "?policy=add-headers") == []


def test_the_policy_filter_combines_with_the_others(client, with_trace) -> None:
    on_api = with_trace(LIMITED, status=429, tunnel_name="api")
    with_trace(LIMITED, status=429, tunnel_name="web")
    assert ids(client, "?policy=blocked&tunnel=api") == [on_api.id]
    assert ids(client, "?policy=blocked&status=2xx") == []


def test_a_malformed_policy_filter_is_reported_not_ignored(client, with_trace) -> None:
    with_trace(LIMITED, status=429)
    body = client.get("/inspect/captures.json?policy=" + "Rate%20Limit!").json()
    assert body["filter_errors"] == ["policy 'rate limit!': use blocked or an action type (basic-auth, rate-limit...)"]


def test_the_page_keeps_the_policy_filter_in_its_form_and_export_link(client, with_trace) -> None:
    with_trace(LIMITED, status=429)
    page = client.get("/inspect/http?policy=blocked").content.decode()
    assert 'name="policy" value="blocked"' in page
    assert "/inspect/export.har?policy=blocked" in page
    assert '<option value="rate-limit">' in page


# --- the status page ----------------------------------------------------------------------------
def test_a_running_tunnels_policy_is_part_of_what_the_pages_show() -> None:
    info = TunnelInfo(
        name="web",
        public_url="http://127.0.0.1:5000",
        proto="http",
        addr="http://localhost:8080",
        inspect=True,
        upstream_host="localhost:8080",
        metrics={},
        traffic_policy=POLICY,
    )
    assert tunnel_info(info)["traffic_policy"] == POLICY


def test_the_status_page_shows_each_tunnels_policy_text_or_none(client, db) -> None:
    Tunnel.objects.create(
        name="guarded",
        tunnel_id="t1",
        proto="https",
        public_url="https://127.0.0.1:5001",
        addr="http://localhost:8080",
        definition={"traffic_policy": POLICY},
        agent_id="elsewhere",
    )
    Tunnel.objects.create(
        name="open",
        tunnel_id="t2",
        proto="https",
        public_url="https://127.0.0.1:5002",
        addr="http://localhost:8081",
        definition={},
        agent_id="elsewhere",
    )
    response = client.get("/status")
    page = response.content.decode()
    guarded = page[page.index('data-tunnel="guarded"') : page.index('data-tunnel="open"')]
    assert (
        '<pre class="traffic-policy-text">on_http_request:\n  - actions:\n      - type: basic-auth\n</pre>' in guarded
    )
    assert '<span class="muted policy-none" hidden>none</span>' in guarded
    unguarded = page[page.index('data-tunnel="open"') :]
    assert '<pre class="traffic-policy-text" hidden></pre><span class="muted policy-none">none</span>' in unguarded
    boot = response.context["boot"]
    assert [t["traffic_policy"] for t in boot["tunnels"]] == [POLICY, ""]


def test_a_policy_given_as_a_mapping_is_shown_as_the_api_shows_it(client, db) -> None:
    Tunnel.objects.create(
        name="mapped",
        tunnel_id="t3",
        proto="http",
        public_url="http://127.0.0.1:5003",
        addr="http://localhost:8080",
        definition={"traffic_policy": {"on_http_request": [{"actions": [{"type": "deny"}]}]}},
        agent_id="elsewhere",
    )
    [shown] = client.get("/status").context["boot"]["tunnels"]
    assert shown["traffic_policy"] == '{"on_http_request": [{"actions": [{"type": "deny"}]}]}'


# --- replay through the policy ------------------------------------------------------------------
def test_replay_with_modifications_refuses_a_through_policy_that_is_not_a_boolean(client, make_capture) -> None:
    capture = make_capture()
    body = {"id": capture.id, "method": "GET", "target": "/", "headers": "", "through_policy": "yes"}
    response = client.post("/inspect/replay", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "through_policy must be true or false"}


def test_the_page_offers_replay_through_the_policy(client, db) -> None:
    page = client.get("/inspect/http").content.decode()
    assert 'name="through_policy"' in page
