"""One summary shape: the row a list page shows is the row the capture sink pushes live."""

from __future__ import annotations

import pytest

from agentapi.capture_store import OrmCaptureStore
from agentapi.captures.summary import SUMMARY_FIELDS, summary, summary_rows
from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.capture_sink import _snapshot, _summary
from agentapi.engine.policy.trace import TraceEntry
from agentapi.models import Capture

pytestmark = pytest.mark.django_db

# Keys only the stored row has: the sink's announcement leaves them out (the detail view shows them).
NOT_PUSHED: set[str] = set()


def whole() -> CaptureRecord:
    record = CaptureRecord(
        id="airt_whole",
        tunnel_name="t",
        remote_addr="127.0.0.1",
        start=1_700_000_000.25,
        method="GET",
        uri="/a",
        limit=1000,
    )
    record.add_request(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    record.add_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    record.status_code, record.duration_ns, record.complete = 200, 1234, True
    return record


def pending() -> CaptureRecord:
    record = CaptureRecord(
        id="airt_pending",
        tunnel_name="t",
        remote_addr="::1",
        start=1_700_000_001.5,
        method="POST",
        uri="/b",
        limit=1000,
    )
    record.add_request(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
    return record


def cut_and_incomplete() -> CaptureRecord:
    record = CaptureRecord(
        id="airt_cut", tunnel_name="t", remote_addr="127.0.0.1", start=1_700_000_002.0, method="PUT", uri="/c", limit=20
    )
    record.add_request(b"PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"y" * 100)
    record.add_response(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 50\r\n\r\n" + b"z" * 10)
    record.mark_incomplete(response=True, reason="the service closed the connection mid-response")
    record.replay_of = "airt_whole"
    record.status_code, record.duration_ns, record.complete = 500, 99, True
    return record


def refused_by_policy() -> CaptureRecord:
    record = whole()
    record.id = "airt_refused"
    record.policy_trace = [TraceEntry("on_http_request", "auth", "basic-auth", "refused 401", terminal=True)]
    record.status_code = 401
    return record


@pytest.mark.parametrize("make", [whole, pending, cut_and_incomplete, refused_by_policy])
def test_a_pushed_summary_is_the_listed_one(make) -> None:
    row = _snapshot(make())
    OrmCaptureStore(budget=0).write([row], [])
    listed = summary(Capture.objects.only(*SUMMARY_FIELDS).get(id=row["id"]))
    pushed = _summary(row)
    assert set(pushed) <= set(listed)
    assert set(listed) - set(pushed) <= NOT_PUSHED
    assert {key: listed[key] for key in pushed} == pushed


@pytest.mark.parametrize("make", [whole, pending, cut_and_incomplete, refused_by_policy])
def test_a_listed_row_summarises_as_its_capture_does(make) -> None:
    # List pages read named rows (summary_rows), the detail a Capture: one summary either way.
    row = _snapshot(make())
    OrmCaptureStore(budget=0).write([row], [])
    [listed] = summary_rows(Capture.objects.filter(id=row["id"]))
    assert summary(listed) == summary(Capture.objects.get(id=row["id"]))


def test_a_list_page_is_one_query(django_assert_num_queries) -> None:
    OrmCaptureStore(budget=0).write([_snapshot(make()) for make in (whole, pending, cut_and_incomplete)], [])
    with django_assert_num_queries(1):
        assert len(summary_rows(Capture.objects.order_by("-id")[:101])) == 3
