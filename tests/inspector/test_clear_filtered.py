"""Clear says what it clears and clears only that; delete one; both tell the open inspectors.

Regression: "Clear" on a filtered view cleared every capture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from django.test import Client

from agentapi.models import Capture
from agentapi.runtime import CAPTURES_GROUP
from tests.inspector.conftest import response_bytes


@pytest.fixture
def layer(settings) -> Iterator[InMemoryChannelLayer]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    memory = get_channel_layer()
    assert isinstance(memory, InMemoryChannelLayer)
    async_to_sync(memory.group_add)(CAPTURES_GROUP, "inspector-tab")
    yield memory
    channel_layers.backends.clear()


def announced(layer: InMemoryChannelLayer) -> list[str]:
    message = async_to_sync(layer.receive)("inspector-tab")
    assert message["type"] == "captures.stored"
    return list(message["evicted"])


def stored() -> set[str]:
    return set(Capture.objects.values_list("id", flat=True))


def test_clear_on_a_filtered_view_deletes_only_what_the_filter_matches(client, make_capture, layer) -> None:
    errors = [make_capture(uri=f"/api/{n}", status=500) for n in range(3)]
    kept = {make_capture(uri="/api/ok").id, make_capture(uri="/else", status=500).id}
    response = client.post("/inspect/captures/clear?path=/api/&status=5xx")
    assert response.status_code == 200
    assert response.json() == {"deleted": 3, "filtered": True}
    assert stored() == kept
    # Every open inspector drops the rows.
    assert set(announced(layer)) == {c.id for c in errors}


def test_clear_with_a_body_filter_checks_the_bytes(client, make_capture, layer) -> None:
    hit = make_capture(response=response_bytes(body=b"needle in here"))
    head_only = make_capture(response=response_bytes(headers={"X-Needle": "needle"}))
    response = client.post("/inspect/captures/clear?body=needle")
    assert response.json() == {"deleted": 1, "filtered": True}
    assert stored() == {head_only.id}
    assert announced(layer) == [hit.id]


def test_empty_parameters_are_no_filter_so_clear_without_filters_clears_all(client, make_capture, layer) -> None:
    make_capture()
    make_capture()
    response = client.post("/inspect/captures/clear?path=&status=")
    assert response.json() == {"deleted": None, "filtered": False}
    assert stored() == set()


def test_a_filter_with_an_error_clears_nothing(client, make_capture, layer) -> None:
    make_capture(status=404)
    make_capture(status=200)
    response = client.post("/inspect/captures/clear?status=4oo")
    assert response.status_code == 400
    assert "a filter has an error: status '4oo'" in response.json()["error"]
    assert len(stored()) == 2


def test_the_count_names_what_clear_would_delete(client, make_capture, monkeypatch) -> None:
    for n in range(5):
        make_capture(uri=f"/api/{n}")
    make_capture(uri="/else")
    assert client.get("/inspect/captures/count.json?path=/api/").json() == {
        "count": 5,
        "exact": True,
        "filtered": True,
        "filter_errors": [],
    }
    unfiltered = client.get("/inspect/captures/count.json?path=").json()
    assert (unfiltered["count"], unfiltered["filtered"]) == (None, False)
    import dashboard.inspector.views as views

    monkeypatch.setattr(views, "CLEAR_COUNT_CAP", 3)
    capped = client.get("/inspect/captures/count.json?path=/api/").json()
    assert (capped["count"], capped["exact"]) == (3, False)


def test_the_count_with_a_body_filter_is_checked_on_the_bytes(client, make_capture, monkeypatch) -> None:
    import dashboard.inspector.capture_list as capture_list

    monkeypatch.setattr(capture_list, "_SCAN_BATCH", 2)
    for _ in range(3):
        make_capture(response=response_bytes(body=b"needle"))
    make_capture(response=response_bytes(headers={"X-Needle": "needle"}))
    body = client.get("/inspect/captures/count.json?body=needle").json()
    assert (body["count"], body["exact"]) == (3, True)


def test_delete_one_removes_it_and_tells_the_open_inspectors(client, make_capture, layer) -> None:
    doomed = make_capture()
    kept = make_capture()
    assert client.delete(f"/inspect/captures/{doomed.id}").status_code == 204
    assert stored() == {kept.id}
    assert announced(layer) == [doomed.id]
    again = client.delete(f"/inspect/captures/{doomed.id}")
    assert again.status_code == 404
    assert "no capture" in again.json()["error"]


def test_delete_and_clear_need_the_csrf_token(make_capture) -> None:
    capture = make_capture()
    strict = Client(HTTP_HOST="127.0.0.1:4040", enforce_csrf_checks=True)
    assert strict.delete(f"/inspect/captures/{capture.id}").status_code == 403
    assert strict.post("/inspect/captures/clear?path=/").status_code == 403
    assert stored() == {capture.id}


def test_replaying_needs_a_running_engine(client, make_capture) -> None:
    capture = make_capture()
    response = client.post(f"/inspect/captures/{capture.id}/replay", b"{}", content_type="application/json")
    assert response.status_code == 503
    assert response.json()["error"] == "no tunnel engine runs in this process"
