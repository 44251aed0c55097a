"""The admin over captures a Traffic Policy answered: the list's column and filter, the steps in
the change view."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agentapi.models import Capture

REFUSED = [
    {"phase": "on_http_request", "rule": "tag", "action": "add-headers", "outcome": "x-env", "terminal": False},
    {"phase": "on_http_request", "rule": "auth", "action": "basic-auth", "outcome": "refused 401", "terminal": True},
]


@pytest.fixture
def admin_client(db: None) -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client(HTTP_HOST="127.0.0.1:4040")
    client.force_login(user)
    return client


@pytest.fixture
def refused(make_capture: Callable[..., Capture]) -> Capture:
    capture = make_capture(status=401, uri="/private")
    capture.policy_trace, capture.policy_action = REFUSED, "basic-auth"
    capture.save(update_fields=["policy_trace", "policy_action"])
    return capture


def listed(response) -> list[str]:
    return [capture.id for capture in response.context["cl"].result_list]


def test_the_list_marks_and_filters_captures_blocked_by_policy(admin_client, make_capture, refused) -> None:
    served = make_capture(uri="/public")
    response = admin_client.get("/admin/agentapi/capture/")
    assert "blocked by policy" in response.content.decode()
    assert "&#9940; basic-auth" in response.content.decode()
    assert listed(admin_client.get("/admin/agentapi/capture/?policy=blocked")) == [refused.id]
    assert listed(admin_client.get("/admin/agentapi/capture/?policy=passed")) == [served.id]


def test_the_list_does_not_load_the_traces(admin_client, refused) -> None:
    with CaptureQueriesContext(connection) as queries:
        admin_client.get("/admin/agentapi/capture/")
    selects = [q["sql"] for q in queries if 'FROM "agentapi_capture"' in q["sql"]]
    assert selects and not any('"policy_trace"' in sql for sql in selects)


def test_the_change_view_shows_each_step_and_which_one_answered(admin_client, refused) -> None:
    page = admin_client.get(f"/admin/agentapi/capture/{refused.id}/change/").content.decode()
    assert (
        "<tr><td>on_http_request</td><td>auth</td><td><code>basic-auth</code></td><td>refused 401</td>"
        "<td><strong>answered</strong></td></tr>"
    ) in page
    assert "<td><code>add-headers</code></td><td>x-env</td><td></td></tr>" in page


def test_the_change_view_says_when_no_policy_action_ran(admin_client, make_capture) -> None:
    capture = make_capture()
    page = admin_client.get(f"/admin/agentapi/capture/{capture.id}/change/").content.decode()
    assert "No Traffic Policy action ran on this exchange." in page
