"""Replay with modifications: the editor's seed, the bytes built back, and the endpoint's guards."""

from __future__ import annotations

import json

import pytest

from dashboard.inspector.replay_request import EditedRequest, ReplayRequestError, build_request, parse_edit
from tests.inspector.conftest import request_bytes


def test_the_seed_is_the_stored_request_with_a_dechunked_body(client, make_capture) -> None:
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    capture = make_capture(
        method="POST",
        request=request_bytes(
            "POST", "/hook?x=1", headers={"Transfer-Encoding": "chunked", "Stripe-Signature": "t=1,v1=x"}, body=chunked
        ),
    )
    seed = client.get(f"/inspect/captures/{capture.id}/replay-seed.json").json()
    assert (seed["method"], seed["target"], seed["body"]) == ("POST", "/hook?x=1", "hello world")
    assert "Transfer-Encoding" not in seed["headers"]
    assert "Stripe-Signature: t=1,v1=x" in seed["headers"].splitlines()
    assert seed["signed"] == ["Stripe-Signature"]
    assert seed["tunnel_name"] == "web"


def test_a_binary_body_is_seeded_as_base64(client, make_capture) -> None:
    capture = make_capture(method="PUT", request=request_bytes("PUT", "/b", body=b"\xff\xfe"))
    seed = client.get(f"/inspect/captures/{capture.id}/replay-seed.json").json()
    assert seed["body"] is None
    assert seed["body_base64"] == "//4="


def test_the_request_is_built_with_a_fresh_length() -> None:
    edit = parse_edit(
        {
            "method": "POST",
            "target": "/orders",
            "headers": "Host: shop.test\nContent-Length: 999\nTransfer-Encoding: chunked\n\nX-Try:  2 ",
            "body": "é",
        }
    )
    raw = build_request(edit, default_host="localhost:8080")
    assert raw == b"POST /orders HTTP/1.1\r\nHost: shop.test\r\nX-Try: 2\r\nContent-Length: 2\r\n\r\n\xc3\xa9"


def test_a_missing_host_gets_the_tunnels_address() -> None:
    raw = build_request(EditedRequest("GET", "/", [], b""), default_host="localhost:8080")
    assert raw == b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        {"method": "GE T", "target": "/"},
        {"method": "GET", "target": "/a b"},
        {"method": "GET", "target": "nope"},
        {"method": "GET", "target": "/", "headers": "no colon here"},
        {"method": "GET", "target": "/", "headers": "Bad Name: x"},
        {"method": "GET", "target": "/", "headers": "X: a\rb"},
        {"method": "GET", "target": "/", "body_base64": "***"},
    ],
)
def test_bad_edits_are_refused_with_a_reason(data) -> None:
    with pytest.raises(ReplayRequestError):
        parse_edit(data)


def test_the_endpoint_needs_the_csrf_token(make_capture) -> None:
    from django.test import Client

    capture = make_capture()
    client = Client(HTTP_HOST="127.0.0.1:4040", enforce_csrf_checks=True)
    body = json.dumps({"id": capture.id, "method": "GET", "target": "/"})
    refused = client.post("/inspect/replay", body, content_type="application/json")
    assert refused.status_code == 403
    page = client.get("/")
    token = page.cookies["csrftoken"].value
    accepted = client.post("/inspect/replay", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    # Past the CSRF check; no engine runs inside the test process.
    assert accepted.status_code == 503


def test_the_endpoint_reports_a_bad_edit(client, make_capture) -> None:
    capture = make_capture()
    body = json.dumps({"id": capture.id, "method": "GET", "target": "no-slash"})
    response = client.post("/inspect/replay", body, content_type="application/json")
    assert response.status_code == 400
    assert "path" in response.json()["error"]


def test_the_endpoint_answers_only_post(client, db) -> None:
    assert client.get("/inspect/replay").status_code == 405


def test_the_editor_shows_utf8_header_text_and_sends_the_same_bytes_back(client, make_capture) -> None:
    raw = b"GET /r%C3%A9 HTTP/1.1\r\nHost: h\r\nX-User: Andr\xc3\xa9\r\nX-Legacy: caf\xe9\r\n\r\n"
    capture = make_capture(method="GET", request=raw)
    response = client.get(f"/inspect/captures/{capture.id}/replay-seed.json")
    assert "X-User: Andr\u00e9" in response.json()["headers"]
    # What the browser sends back (JSON, lone surrogates escaped): the non-UTF-8 byte survives.
    edited = json.loads(response.content)
    rebuilt = build_request(parse_edit(edited), default_host="h")
    assert b"X-User: Andr\xc3\xa9\r\n" in rebuilt
    assert b"X-Legacy: caf\xe9\r\n" in rebuilt
