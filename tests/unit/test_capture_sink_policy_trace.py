"""A capture's Traffic Policy trace on its way to the database: the sink's row, the store's write."""

from __future__ import annotations

import pytest

from agentapi.capture_store import OrmCaptureStore
from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.capture_sink import _snapshot, _summary, policy_action
from agentapi.engine.policy.trace import TraceEntry
from agentapi.models import Capture

AUTH_REFUSED = TraceEntry("on_http_request", "auth", "basic-auth", "refused 401", terminal=True)
HEADERS_ADDED = TraceEntry("on_http_request", "tag", "add-headers", "x-env")


def record(capture_id: str = "airt_policy", trace: list[TraceEntry] | None = None) -> CaptureRecord:
    made = CaptureRecord(
        id=capture_id, tunnel_name="t", remote_addr="127.0.0.1", start=1_700_000_000.5, method="GET", uri="/", limit=100
    )
    made.add_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    made.policy_trace = list(trace or [])
    return made


def complete(made: CaptureRecord, status: int) -> CaptureRecord:
    made.add_response(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
    made.status_code, made.complete = status, True
    return made


def test_a_capture_without_a_policy_has_an_empty_trace_and_no_action() -> None:
    row = _snapshot(record())
    assert (row["policy_trace"], row["policy_action"]) == ([], "")
    assert _summary(row)["policy_action"] == ""


def test_the_row_holds_each_step_as_json_and_names_the_terminal_action() -> None:
    row = _snapshot(record(trace=[HEADERS_ADDED, AUTH_REFUSED]))
    assert row["policy_trace"] == [
        {"phase": "on_http_request", "rule": "tag", "action": "add-headers", "outcome": "x-env", "terminal": False},
        {
            "phase": "on_http_request",
            "rule": "auth",
            "action": "basic-auth",
            "outcome": "refused 401",
            "terminal": True,
        },
    ]
    assert row["policy_action"] == "basic-auth"
    assert _summary(row)["policy_action"] == "basic-auth"


def test_actions_that_let_the_request_through_name_no_action() -> None:
    passed = TraceEntry("on_http_request", "auth", "basic-auth", "allowed user")
    assert policy_action([HEADERS_ADDED, passed]) == ""


def test_the_last_terminal_step_is_the_answer_the_client_saw() -> None:
    replaced = TraceEntry("on_http_response", "hide", "custom-response", "503", terminal=True)
    assert policy_action([AUTH_REFUSED, replaced]) == "custom-response"


def test_the_row_does_not_change_when_the_record_grows_after_the_snapshot() -> None:
    made = record(trace=[HEADERS_ADDED])
    row = _snapshot(made)
    made.policy_trace.append(AUTH_REFUSED)
    assert len(row["policy_trace"]) == 1 and row["policy_action"] == ""


@pytest.mark.django_db
def test_the_store_writes_the_trace_and_its_action() -> None:
    OrmCaptureStore(budget=0).write([_snapshot(complete(record(trace=[HEADERS_ADDED, AUTH_REFUSED]), 401))], [])
    stored = Capture.objects.get(id="airt_policy")
    assert [step["action"] for step in stored.policy_trace] == ["add-headers", "basic-auth"]
    assert stored.policy_trace[1]["terminal"] is True
    assert stored.policy_action == "basic-auth"


@pytest.mark.django_db
def test_a_trace_filled_after_the_first_write_reaches_the_row() -> None:
    store = OrmCaptureStore(budget=0)
    made = record()
    store.write([_snapshot(made)], [])  # stored while pending, before the policy answered
    made.policy_trace.append(AUTH_REFUSED)
    store.write([], [_snapshot(complete(made, 401))])
    stored = Capture.objects.get(id="airt_policy")
    assert (stored.policy_action, stored.status_code) == ("basic-auth", 401)
    assert stored.policy_trace == [AUTH_REFUSED.as_json()]


@pytest.mark.django_db
def test_captures_without_a_policy_store_an_empty_trace() -> None:
    OrmCaptureStore(budget=0).write([_snapshot(complete(record(), 200))], [])
    stored = Capture.objects.get(id="airt_policy")
    assert (stored.policy_trace, stored.policy_action) == ([], "")
