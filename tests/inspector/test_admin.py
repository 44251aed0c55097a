"""The admin over captures: filters, search in bytes, no whole-table COUNT(*), read-only detail."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agentapi.models import Capture
from tests.inspector.conftest import request_bytes, response_bytes


@pytest.fixture
def admin_client(db: None) -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client(HTTP_HOST="127.0.0.1:4040")
    client.force_login(user)
    return client


def listed(response) -> list[str]:
    return [capture.id for capture in response.context["cl"].result_list]


def test_the_list_filters_by_tunnel_method_and_status_class(admin_client, make_capture) -> None:
    hit = make_capture(tunnel_name="api", method="POST", status=503)
    make_capture(tunnel_name="api", method="POST", status=200)
    make_capture(tunnel_name="web", method="POST", status=503)
    response = admin_client.get("/admin/agentapi/capture/?tunnel=api&method=POST&status_class=5")
    assert response.status_code == 200
    assert listed(response) == [hit.id]


def test_pending_is_a_status_class(admin_client, make_capture) -> None:
    pending = make_capture(status=None, response=None)
    make_capture()
    assert listed(admin_client.get("/admin/agentapi/capture/?status_class=pending")) == [pending.id]


def test_search_matches_path_and_header_text(admin_client, make_capture) -> None:
    by_path = make_capture(uri="/orders/77")
    by_header = make_capture(request=request_bytes(headers={"X-Order": "orders-77"}))
    make_capture(uri="/else")
    assert set(listed(admin_client.get("/admin/agentapi/capture/?q=orders"))) == {by_path.id, by_header.id}
    assert listed(admin_client.get("/admin/agentapi/capture/?q=orders-77")) == [by_header.id]


def test_the_list_never_counts_the_whole_table(admin_client, make_capture) -> None:
    for _ in range(3):
        make_capture()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/agentapi/capture/?method=GET")
    assert response.status_code == 200
    assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    # And it does not load the stored bytes of the listed rows.
    capture_selects = [q["sql"] for q in queries if 'FROM "agentapi_capture"' in q["sql"]]
    assert capture_selects
    assert not any('"request_raw"' in sql for sql in capture_selects)


def test_the_detail_renders_request_and_response_read_only(admin_client, make_capture) -> None:
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "application/json"}, body=b'{"ok":true}'),
    )
    response = admin_client.get(f"/admin/agentapi/capture/{capture.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "GET / HTTP/1.1" in page
    assert "&quot;ok&quot;: true" in page
    assert 'name="_save"' not in page  # view only


def test_delete_action_removes_captures(admin_client, make_capture) -> None:
    doomed = make_capture()
    kept = make_capture()
    response = admin_client.post(
        "/admin/agentapi/capture/", {"action": "delete_selected", "_selected_action": [doomed.id], "post": "yes"}
    )
    assert response.status_code == 302
    assert list(Capture.objects.values_list("id", flat=True)) == [kept.id]


def test_replay_action_needs_a_running_engine(admin_client, make_capture) -> None:
    capture = make_capture()
    response = admin_client.post(
        "/admin/agentapi/capture/", {"action": "replay_selected", "_selected_action": [capture.id]}, follow=True
    )
    assert "No tunnel engine runs in this process." in response.content.decode()


def test_tunnels_are_listed_read_only(admin_client, db) -> None:
    response = admin_client.get("/admin/agentapi/tunnel/")
    assert response.status_code == 200


def test_the_detail_shows_utf8_header_text(admin_client, make_capture) -> None:
    head, _, body = request_bytes(headers={"X-User": "André"}).partition(b"\r\n\r\n")
    capture = make_capture(request=head.decode("latin-1").encode("utf-8") + b"\r\n\r\n" + body)
    page = admin_client.get(f"/admin/agentapi/capture/{capture.id}/change/").content.decode()
    assert "X-User: André" in page
    assert "AndrÃ©" not in page


def test_the_list_marks_and_filters_captures_that_are_not_whole(admin_client, make_capture) -> None:
    whole = make_capture()
    incomplete = make_capture(response=None, status=None)
    reason = "the client closed the connection before the request body was sent"
    Capture.objects.filter(id=incomplete.id).update(request_complete=False, incomplete_reason=reason)
    raw = response_bytes(body=b"x" * 100)
    truncated = make_capture(response=raw[:-50], response_size=len(raw))
    response = admin_client.get("/admin/agentapi/capture/")
    page = response.content.decode()
    assert "request incomplete" in page
    assert "cut at the capture limit" in page
    assert reason in page  # the mark's title
    assert listed(admin_client.get("/admin/agentapi/capture/?capture=incomplete")) == [incomplete.id]
    assert listed(admin_client.get("/admin/agentapi/capture/?capture=truncated")) == [truncated.id]
    assert listed(admin_client.get("/admin/agentapi/capture/?capture=whole")) == [whole.id]


def test_the_detail_says_which_side_is_incomplete_and_why(admin_client, make_capture) -> None:
    capture = make_capture(response=None, status=None)
    reason = "the service closed the connection before it answered"
    Capture.objects.filter(id=capture.id).update(response_complete=False, incomplete_reason=reason)
    page = admin_client.get(f"/admin/agentapi/capture/{capture.id}/change/").content.decode()
    assert f"No response: {reason}." in page
