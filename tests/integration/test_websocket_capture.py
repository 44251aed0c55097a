"""A real agent between a real WebSocket client and echo service (the `websockets` package): the
frames of the upgraded connection show in the API's extension, and the echo is unchanged."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from websockets.sync.client import connect
from websockets.sync.server import Server

from agentapi.capture_store import OrmCaptureStore
from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.capture_sink import _snapshot
from agentapi.engine.websocket_frames import FrameRecorder
from agentapi.models import Capture, WebSocketFrame, WebSocketTotals
from tests.support.agent_process import AgentProcess
from tests.support.websocket_echo import websocket_echo


@pytest.fixture
def echo_service() -> Iterator[Server]:
    with websocket_echo() as server:
        yield server


def _websocket_capture(agent: AgentProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        found = [c for c in agent.api("GET", "/api/requests/http").json()["requests"] if c["response"]]
        if found and found[0]["response"]["status_code"] == 101:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no 101 capture: {found}")
        time.sleep(0.05)


def _frames_when(agent: AgentProcess, capture_id: str, count: int, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body = agent.api("GET", f"/api/requests/http/{capture_id}/websocket", params=params).json()
        if body["totals"] is not None and len(body["frames"]) >= count:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} frames: {body}")
        time.sleep(0.05)


def test_text_binary_and_close_frames_are_shown_in_the_api(agent: AgentProcess, echo_service: Server) -> None:
    port = echo_service.socket.getsockname()[1]
    tunnel = agent.start_tunnel(name="ws", proto="http", addr=str(port))
    url = tunnel["public_url"].replace("http://", "ws://") + "/chat"
    blob = bytes(range(256)) * 3
    with connect(url, compression=None, open_timeout=10) as socket:
        socket.send('{"say": "hello"}')
        assert socket.recv(timeout=5) == '{"say": "hello"}'
        socket.send(blob)
        assert socket.recv(timeout=5) == blob  # the pipe carried every byte back
        socket.close(code=1000, reason="done")
    capture = _websocket_capture(agent)
    body = _frames_when(agent, capture["id"], 6)
    frames = body["frames"]
    seen = [(f["direction"], f["opcode_name"]) for f in frames]
    assert seen == [
        ("client", "text"),
        ("server", "text"),
        ("client", "binary"),
        ("server", "binary"),
        ("client", "close"),
        ("server", "close"),
    ]
    assert [f["seq"] for f in frames] == list(range(6))
    assert base64.b64decode(frames[0]["payload"]) == b'{"say": "hello"}'
    assert base64.b64decode(frames[3]["payload"]) == blob and frames[3]["size"] == len(blob)
    assert not frames[3]["truncated"]
    assert (frames[4]["close_code"], frames[4]["close_reason"]) == (1000, "done")
    assert frames[0]["time"] <= frames[5]["time"]
    totals = body["totals"]
    assert (totals["client_frames"], totals["server_frames"], totals["recorded"], totals["stopped"]) == (3, 3, 6, "")
    assert totals["client_bytes"] == 16 + len(blob) + 6
    later = agent.api("GET", f"/api/requests/http/{capture['id']}/websocket", params={"after": "3"}).json()
    assert [f["seq"] for f in later["frames"]] == [4, 5]


def test_a_capture_that_is_not_a_websocket_has_no_frames_and_a_missing_one_is_404(
    agent: AgentProcess, echo_service: Server
) -> None:
    port = echo_service.socket.getsockname()[1]
    tunnel = agent.start_tunnel(name="ws", proto="http", addr=str(port))
    plain = requests.get(tunnel["public_url"] + "/", headers={"Connection": "close"}, timeout=10)
    assert plain.status_code == 426  # the echo service wants an Upgrade
    [capture] = agent.api("GET", "/api/requests/http").json()["requests"]
    body = agent.api("GET", f"/api/requests/http/{capture['id']}/websocket").json()
    assert (body["totals"], body["frames"]) == (None, [])
    bad = agent.api("GET", f"/api/requests/http/{capture['id']}/websocket", params={"after": "x"})
    assert (bad.status_code, bad.json()["details"]["err"]) == (400, "after must be a whole number, got 'x'")
    missing = agent.api("GET", "/api/requests/http/airt_nothing/websocket")
    assert (missing.status_code, missing.json()["msg"]) == (404, 'request "airt_nothing" not found')


def _capture_row(capture_id: str, size: int) -> dict[str, Any]:
    record = CaptureRecord(
        id=capture_id, tunnel_name="t", remote_addr="::1", start=1.0, method="GET", uri="/ws", limit=1 << 20
    )
    record.add_request(b"r" * size)
    record.complete = True
    record.status_code = 101
    return _snapshot(record)


def _frame(capture_id: str, seq: int) -> dict[str, Any]:
    return {
        "capture_id": capture_id,
        "seq": seq,
        "direction": "server",
        "time": 2.0,
        "opcode": 1,
        "fin": True,
        "compressed": False,
        "size": 5,
        "payload": b"hello",
        "close_code": None,
    }


def _totals(capture_id: str) -> dict[str, Any]:
    return {"capture_id": capture_id, **FrameRecorder().totals()}


@pytest.mark.django_db(transaction=True)
def test_the_store_keeps_frames_of_existing_captures_and_evicts_them_with_their_capture() -> None:
    store = OrmCaptureStore(budget=1000)
    store.write([_capture_row("airt_1", 600)], [])
    store.write_frames([_frame("airt_1", 0), _frame("airt_gone", 0)], [_totals("airt_1"), _totals("airt_gone")])
    store.write_frames([_frame("airt_1", 0), _frame("airt_1", 1)], [_totals("airt_1")])  # a retried batch
    assert list(WebSocketFrame.objects.values_list("capture_id", "seq")) == [("airt_1", 0), ("airt_1", 1)]
    assert list(WebSocketTotals.objects.values_list("capture_id", flat=True)) == ["airt_1"]
    evicted = store.write([_capture_row("airt_2", 600)], [])  # past the budget: the oldest goes
    assert evicted == ["airt_1"]
    assert not WebSocketFrame.objects.exists() and not WebSocketTotals.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_clearing_captures_loads_no_rows_and_the_frames_left_behind_are_swept() -> None:
    store = OrmCaptureStore(budget=0)
    store.write([_capture_row("airt_1", 10)], [])
    store.write_frames([_frame("airt_1", 0)], [_totals("airt_1")])
    with CaptureQueriesContext(connection) as queries:
        Capture.objects.all().delete()  # what "clear all" runs
    verbs = [q["sql"].split()[0] for q in queries.captured_queries]
    assert "SELECT" not in verbs and verbs.count("DELETE") == 1  # one DELETE, no SELECT of every row
    assert WebSocketFrame.objects.exists()  # until the store's next write
    store.forget_total()
    store.write([_capture_row("airt_2", 10)], [])
    assert not WebSocketFrame.objects.exists() and not WebSocketTotals.objects.exists()
