"""GET /api/requests/http/:id: metadata and the raw bytes of one exchange."""

from __future__ import annotations

import base64
import datetime as dt
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.helpers import (
    CAPTURE_KEYS,
    REQUEST_KEYS,
    RESPONSE_KEYS,
    assert_error,
    raw_exchange,
    wait_for,
    wait_for_captures,
)
from tests.support.agent_process import AgentProcess
from tests.support.upstream import start_upstream

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
BINARY = bytes(range(256))


def head_and_body(raw_b64: str) -> tuple[bytes, bytes]:
    head, _, body = base64.b64decode(raw_b64).partition(b"\r\n\r\n")
    return head, body


def test_keys_come_in_the_agents_order(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/a", timeout=10)
    [listed] = wait_for_captures(agent, 1)
    response = agent.api("GET", listed["uri"])
    assert response.status_code == 200
    capture = response.json()
    assert list(capture) == CAPTURE_KEYS
    assert list(capture["request"]) == REQUEST_KEYS
    assert list(capture["response"]) == RESPONSE_KEYS


def test_metadata_describes_the_exchange(agent, http_tunnel) -> None:
    requests.post(http_tunnel["public_url"] + "/echo?x=1", data=b"hi", timeout=10)
    [capture] = wait_for_captures(agent, 1)
    assert capture["uri"] == "/api/requests/http/" + capture["id"]
    assert re.fullmatch(r"airt_[0-9A-Za-z]{27}", capture["id"])
    assert capture["tunnel_name"] == "web"
    assert capture["remote_addr"] == "127.0.0.1"
    assert capture["request"]["method"] == "POST"
    assert capture["request"]["proto"] == "HTTP/1.1"
    assert capture["request"]["uri"] == "/echo?x=1"
    assert capture["response"]["status"] == "200 OK"
    assert capture["response"]["status_code"] == 200
    assert capture["response"]["proto"] == "HTTP/1.1"


def test_status_keeps_the_upstreams_reason_phrase(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/status/404", timeout=10)
    [capture] = wait_for_captures(agent, 1)
    assert capture["response"]["status"] == "404 Not Found"
    assert capture["response"]["status_code"] == 404


def test_start_is_rfc_3339_and_duration_is_integer_nanoseconds(agent, http_tunnel) -> None:
    requests.get(http_tunnel["public_url"] + "/slow/0.1", timeout=10)
    [capture] = wait_for_captures(agent, 1)
    assert RFC3339.fullmatch(capture["start"])
    start = dt.datetime.fromisoformat(capture["start"])
    assert abs((dt.datetime.now(dt.UTC) - start).total_seconds()) < 60
    assert isinstance(capture["duration"], int)
    assert 0.1e9 <= capture["duration"] < 10e9
    text = agent.api("GET", capture["uri"]).text
    assert f'"duration":{capture["duration"]},' in text


def test_headers_are_canonical_lists_without_host(agent, http_tunnel) -> None:
    request = (
        b"GET /h HTTP/1.1\r\nHost: example.test\r\nx-dup: a\r\nX-DUP: b\r\nx_trace_id: 7\r\n"
        b"accept-encoding: identity\r\nConnection: close\r\n\r\n"
    )
    raw_exchange(http_tunnel["public_url"], request)
    [capture] = wait_for_captures(agent, 1)
    headers = capture["request"]["headers"]
    assert "Host" not in headers and "host" not in headers
    assert headers["X-Dup"] == ["a", "b"]
    assert headers["X_trace_id"] == ["7"]
    assert headers["Accept-Encoding"] == ["identity"]
    assert headers["X-Forwarded-For"] == ["127.0.0.1"]
    assert all(isinstance(values, list) for values in headers.values())
    assert capture["response"]["headers"]["Content-Type"] == ["application/octet-stream"]


def test_raw_request_is_the_forwarded_message_byte_for_byte(agent, upstream, http_tunnel) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 256\r\nConnection: close\r\n\r\n" + BINARY
    )
    raw_exchange(http_tunnel["public_url"], request)
    [capture] = wait_for_captures(agent, 1)
    head, body = head_and_body(capture["request"]["raw"])
    assert body == BINARY == upstream.received[-1].body
    assert head.startswith(b"POST /echo HTTP/1.1\r\nHost: example.test\r\n")
    assert b"\r\nX-Forwarded-For: 127.0.0.1" in head


def test_raw_response_is_what_the_client_got_byte_for_byte(agent, http_tunnel) -> None:
    request = b"GET /bytes/300 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
    got = raw_exchange(http_tunnel["public_url"], request)
    [capture] = wait_for_captures(agent, 1)
    raw = base64.b64decode(capture["response"]["raw"])
    assert raw == got
    assert raw.partition(b"\r\n\r\n")[2] == bytes(i % 256 for i in range(300))


def test_a_chunked_request_body_is_captured_as_sent(agent, upstream, http_tunnel) -> None:
    requests.post(http_tunnel["public_url"] + "/echo", data=iter([b"\x00\xff", b"\x80abc"]), timeout=10)
    [capture] = wait_for_captures(agent, 1)
    _, body = head_and_body(capture["request"]["raw"])
    assert upstream.received[-1].body == b"\x00\xff\x80abc"
    assert b"\x00\xff" in body and b"\x80abc" in body
    assert capture["request"]["headers"]["Transfer-Encoding"] == ["chunked"]


def test_response_is_null_only_while_the_upstream_has_not_answered(agent, http_tunnel) -> None:
    done = threading.Event()

    def slow() -> None:
        requests.get(http_tunnel["public_url"] + "/slow/1.5", timeout=10)
        done.set()

    threading.Thread(target=slow, daemon=True).start()
    [pending] = wait_for_captures(agent, 1, complete=False)
    assert not done.is_set(), "the slow request finished before the test saw it pending"
    detail = agent.api("GET", pending["uri"])
    assert detail.status_code == 200
    assert list(detail.json()) == CAPTURE_KEYS
    assert detail.json()["response"] is None
    assert '"response":null}' in detail.text
    assert done.wait(10)
    answered = wait_for(lambda: agent.api("GET", pending["uri"]).json()["response"])
    assert answered["status_code"] == 200


def test_an_unknown_id_is_404_in_the_error_shape(agent) -> None:
    assert_error(agent.api("GET", "/api/requests/http/airt_nope"), 404, 100, 'request "airt_nope" not found')


@pytest.fixture(scope="module")
def kolkata_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(Path(tmp_path_factory.mktemp("tz")), env={"TZ": "Asia/Kolkata"}).start()
    yield process
    process.stop()


def test_start_carries_the_agents_local_offset(kolkata_agent: AgentProcess) -> None:
    upstream = start_upstream()
    try:
        tunnel = kolkata_agent.start_tunnel(name="web", addr=str(upstream.port))
        requests.get(tunnel["public_url"] + "/tz", timeout=10)
        [capture] = wait_for_captures(kolkata_agent, 1)
    finally:
        upstream.close()
    assert capture["start"].endswith("+05:30")
    assert RFC3339.fullmatch(capture["start"])


def test_header_values_are_utf8_text_as_sent(agent, http_tunnel) -> None:
    request = (
        "GET /h HTTP/1.1\r\nHost: example.test\r\nX-User: André\r\n"
        'Content-Disposition: attachment; filename="résumé.pdf"\r\nConnection: close\r\n\r\n'
    ).encode()
    raw_exchange(http_tunnel["public_url"], request)
    [listed] = wait_for_captures(agent, 1)
    for capture in (listed, agent.api("GET", listed["uri"]).json()):
        headers = capture["request"]["headers"]
        assert headers["X-User"] == ["André"]
        assert headers["Content-Disposition"] == ['attachment; filename="résumé.pdf"']
        # The raw bytes stay what was sent.
        assert "X-User: André".encode() in base64.b64decode(capture["request"]["raw"])


def test_header_bytes_that_are_not_utf8_become_u_fffd_each_as_in_go(agent, http_tunnel) -> None:
    request = (
        b"GET /h HTTP/1.1\r\nHost: example.test\r\nX-User: Andr\xe9\r\nX-Cut: a\xe2\x82b\r\nConnection: close\r\n\r\n"
    )
    raw_exchange(http_tunnel["public_url"], request)
    [capture] = wait_for_captures(agent, 1)
    headers = capture["request"]["headers"]
    assert headers["X-User"] == ["Andr\ufffd"]
    assert headers["X-Cut"] == ["a\ufffd\ufffdb"]
    assert b"X-User: Andr\xe9\r\n" in base64.b64decode(capture["request"]["raw"])
