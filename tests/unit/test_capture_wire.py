"""The API's capture documents are byte for byte what the DRF serializer and the Go JSON renderer
wrote before the list was made fast (issue 11): `reference_capture` below is that serializer as it
was, kept as the yardstick, and every kind of stored capture is listed through both.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agentapi import go_json
from agentapi.captures.header_text import api_fields
from agentapi.engine.http1 import parse_stored_head, reason_phrase
from agentapi.models import Capture
from agentapi.serializers import canonical_header, capture_document, capture_list_document, go_time

pytestmark = pytest.mark.django_db


# --- the reference: agentapi/serializers.py's CaptureSerializer before issue 11, unchanged ----------
def reference_header_map(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        key = canonical_header(name)
        if key == "Host":
            continue
        headers.setdefault(key, []).append(value)
    return headers


def reference_capture(capture: Capture) -> dict[str, Any]:
    request_raw = bytes(capture.request_raw)
    request = parse_stored_head(request_raw, response=False)
    response: dict[str, Any] | None = None
    if capture.status_code is not None and capture.response_raw is not None:
        response_raw = bytes(capture.response_raw)
        head = parse_stored_head(response_raw, response=True)
        status = head.status or capture.status_code
        response = {
            "status": f"{status} {head.reason or reason_phrase(status)}".rstrip(),
            "status_code": status,
            "proto": f"HTTP/{head.version}",
            "headers": reference_header_map(api_fields(head.raw_headers)),
            "raw": base64.b64encode(response_raw).decode("ascii"),
            "size": capture.response_size or 0,
            "truncated": capture.response_truncated,
            "complete": capture.response_complete,
        }
    return {
        "uri": "/api/requests/http/" + capture.id,
        "id": capture.id,
        "tunnel_name": capture.tunnel_name,
        "remote_addr": capture.remote_addr,
        "start": go_time(capture.start),
        "duration": capture.duration_ns,
        "incomplete_reason": capture.incomplete_reason,
        "traffic_policy": [
            {key: step[key] for key in ("phase", "rule", "action", "outcome", "terminal")}
            for step in capture.policy_trace
        ],
        "request": {
            "method": capture.method,
            "proto": f"HTTP/{request.version}",
            "headers": reference_header_map(api_fields(request.raw_headers)),
            "uri": capture.uri,
            "raw": base64.b64encode(request_raw).decode("ascii"),
            "size": capture.request_size,
            "truncated": capture.request_truncated,
            "complete": capture.request_complete,
        },
        "response": response,
    }


def reference_list(captures: list[Capture]) -> bytes:
    return go_json.encode_document(
        {"uri": "/api/requests/http", "requests": [reference_capture(capture) for capture in captures]}
    )


# --- the captures ---------------------------------------------------------------------------------
START = dt.datetime(2026, 11, 30, 9, 15, 27, 123456, tzinfo=dt.UTC)
GET = b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"


def make(number: int, *, save: bool = True, **fields: Any) -> Capture:
    request_raw = fields.pop("request_raw", GET)
    response_raw = fields.pop("response_raw", OK)
    values: dict[str, Any] = {
        "id": f"airt_{number:027d}",
        "tunnel_name": "web",
        "remote_addr": "127.0.0.1",
        "start": START + dt.timedelta(seconds=number),
        "duration_ns": 1_234_567 * number,
        "method": "GET",
        "uri": "/a",
        "request_raw": request_raw,
        "request_size": len(request_raw),
        "response_raw": response_raw,
        "response_size": None if response_raw is None else len(response_raw),
        "status_code": 200,
        "stored_size": len(request_raw) + len(response_raw or b""),
        **fields,
    }
    return Capture.objects.create(**values) if save else Capture(**values)


def varied() -> list[Capture]:
    upload = (
        b"POST /hook?a=1&b=<2> HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9000\r\n\r\n"
    )
    return [
        make(1),
        # Still waiting for its response; and one whose row has a status but no bytes.
        make(2, response_raw=None, status_code=None),
        make(3, response_raw=None, status_code=502),
        # Cut by the capture limit on both sides, and a client that left mid-upload.
        make(
            4,
            method="POST",
            uri="/hook?a=1&b=<2>",
            request_raw=upload + b"{" * 100,
            request_size=len(upload) + 9000,
            response_raw=OK[:30],
            response_size=len(OK),
            request_complete=False,
            incomplete_reason="the client closed the connection mid-request",
        ),
        # The service closed mid-response.
        make(5, response_complete=False, incomplete_reason="the service closed the connection mid-response"),
        # Headers that are not UTF-8, repeated, in odd cases, with HTML-unsafe and line-separator text.
        make(
            6,
            request_raw=b"GET /caf%C3%A9 HTTP/1.1\r\nHost: x\r\nX-User: Andr\xe9\r\nx-multi: 1\r\nX-MULTI: 2\r\n"
            b"x_trace_id: <&>\r\nX-Sep: a\xe2\x80\xa8b\xe2\x80\xa9c\r\nX-Cut: \xe2\x82\r\n\r\n",
            uri="/caf\u00e9",
            response_raw=b"HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nwww-authenticate: Basic\r\n"
            b"X-Name: caf\xe9 \xe2\x80\xa9\r\nContent-Length: 0\r\n\r\n",
            status_code=404,
        ),
        # 100 Continue before the final answer; a reason phrase of the service's own; none at all.
        make(
            7,
            response_raw=b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Made It\r\nContent-Length: 0\r\n\r\n",
            status_code=201,
        ),
        make(8, response_raw=b"HTTP/1.1 299\r\nContent-Length: 0\r\n\r\n", status_code=299),
        make(9, response_raw=b"HTTP/1.0 499 \r\n\r\n", status_code=499),
        # A head that does not parse: llhttp refuses raw UTF-8 in a target (the fields before the
        # error are kept), one cut by the capture limit, and a response of garbage.
        make(17, request_raw=b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"),
        make(10, request_raw=b"GET /long HTTP/1.1\r\nHost: x\r\nX-Long: aaaa", request_size=70_000),
        make(11, response_raw=b"not http at all", status_code=502),
        # HTTP/1.0, chunked, a 101.
        make(
            12,
            request_raw=b"GET /old HTTP/1.0\r\n\r\n",
            response_raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        make(
            13,
            request_raw=b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            response_raw=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
            status_code=101,
        ),
        # Answered by a Traffic Policy, and a replay.
        make(
            14,
            status_code=401,
            policy_action="basic-auth",
            policy_trace=[
                {
                    "phase": "on_http_request",
                    "rule": "auth <admins>",
                    "action": "basic-auth",
                    "outcome": "refused 401",
                    "terminal": True,
                }
            ],
            response_raw=b'HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic realm="x"\r\n\r\n',
        ),
        make(15, replay_of="airt_000000000000000000000000001", remote_addr="::1", tunnel_name="api (1) \u2028"),
        make(16, request_raw=b"", request_size=0, response_raw=b"", response_size=0, status_code=0),
    ]


def api_order(captures: list[Capture]) -> list[Capture]:
    return list(Capture.objects.filter(id__in=[c.id for c in captures]).order_by("-id"))


@pytest.fixture(params=["UTC", "America/Los_Angeles", "Asia/Kolkata"])
def zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_list_document_is_byte_identical_to_the_serializers(zone: None) -> None:
    captures = api_order(varied())
    assert capture_list_document(captures) == reference_list(captures)


def test_each_capture_document_is_byte_identical_to_the_serializers(zone: None) -> None:
    for capture in api_order(varied()):
        assert capture_document(capture) == go_json.encode_document(reference_capture(capture)), capture.id


def test_an_empty_list_is_the_serializers() -> None:
    assert capture_list_document([]) == b'{"uri":"/api/requests/http","requests":[]}\n'


def test_a_trace_holding_numbers_is_written_as_go_writes_them() -> None:
    # Rows are written by the agent with strings and booleans only, but a stored trace is JSON:
    # a number in it (another agent's version, a hand edit) is written as Go writes floats.
    trace = [{"phase": "on_http_request", "rule": "r", "action": "rate-limit", "outcome": 1.5e-7, "terminal": 1.0}]
    captures = api_order([make(20, policy_trace=trace), make(21)])
    document = capture_list_document(captures)
    assert document == reference_list(captures)
    assert b'"outcome":1.5e-7,"terminal":1}' in document


def test_text_that_cannot_be_utf8_is_written_as_go_writes_it() -> None:
    # No database stores a lone surrogate; the document still never fails on one.
    captures = [make(22, uri="/\udce9x", save=False)]
    document = capture_list_document(captures)
    assert document == reference_list(captures)
    assert '"uri":"/\ufffdx"'.encode() in document


def test_a_list_is_one_query(django_assert_num_queries) -> None:
    varied()
    with django_assert_num_queries(1):
        capture_list_document(Capture.objects.order_by("-id")[:50])
