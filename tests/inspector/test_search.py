"""Search that matches the screen: the list's filters, the free-text box and the admin search find
what the detail shows (decoded targets, decoded bodies), and a filter that cannot be read is reported."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import brotli
import pytest
import zstandard
from django.contrib.auth.models import User
from django.test import Client

from agentapi.captures import capture_search
from agentapi.models import Capture
from tests.inspector.conftest import request_bytes, response_bytes


def found(client: Client, query: str) -> list[str]:
    response = client.get("/inspect/captures.json" + query)
    assert response.status_code == 200
    body = response.json()
    assert body["filter_errors"] == []
    return [capture["id"] for capture in body["captures"]]


def get(make_capture: Callable[..., Capture], target: str) -> Capture:
    return make_capture(uri=target, request=request_bytes("GET", target))


def gzipped_response(text: bytes, content_type: str = "application/json") -> bytes:
    headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
    return response_bytes(headers=headers, body=gzip.compress(text))


# --- path and query, decoded ---------------------------------------------------------------------
def test_path_finds_a_percent_encoded_utf8_query_by_the_text_the_summary_shows(client, make_capture) -> None:
    hit = get(make_capture, "/json?name=J%C3%BCrgen")
    lower_hex = get(make_capture, "/json?name=j%c3%bcrgen")
    get(make_capture, "/json?name=Jurgen")
    assert set(found(client, "?path=Jürgen")) == {hit.id, lower_hex.id}
    assert set(found(client, "?path=J%25C3%25BCrgen")) == {hit.id, lower_hex.id}  # typed as stored, too


def test_path_reads_plus_and_percent_20_as_spaces_and_raw_utf8_as_sent(client, make_capture) -> None:
    plus = get(make_capture, "/search?q=new+york")
    encoded = get(make_capture, "/new%20york/map")
    raw = get(make_capture, "/caf\u00c3\u00a9")  # a client that sent UTF-8 bytes unencoded (stored as Latin-1)
    get(make_capture, "/newyork")
    assert set(found(client, "?path=new york")) == {plus.id, encoded.id}
    assert found(client, "?path=café") == [raw.id]


def test_path_is_any_case(client, make_capture) -> None:
    hit = get(make_capture, "/Orders/Open")
    assert found(client, "?path=orders/open") == [hit.id]


# --- bodies, decoded -----------------------------------------------------------------------------
CODINGS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("br", brotli.compress),
    ("zstd", zstandard.ZstdCompressor().compress),
    ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
]


@pytest.mark.parametrize(("coding", "encode"), CODINGS)
def test_body_finds_text_in_every_coding_the_detail_decodes(client, make_capture, coding, encode) -> None:
    hit = make_capture(
        response=response_bytes(headers={"Content-Encoding": coding}, body=encode(b'{"word": "needle"}'))
    )
    make_capture(response=response_bytes(headers={"Content-Encoding": coding}, body=encode(b"hay")))
    assert found(client, "?body=needle") == [hit.id]


def test_body_finds_a_chunked_gzip_body_whatever_the_header_case(client, make_capture) -> None:
    payload = gzip.compress(b"the secret word")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    hit = make_capture(
        response=response_bytes(headers={"CONTENT-ENCODING": "gzip", "Transfer-Encoding": "chunked"}, body=chunked)
    )
    assert found(client, "?body=secret word") == [hit.id]


def test_body_reads_json_escapes_as_the_json_view_shows_them(client, make_capture) -> None:
    python = make_capture(response=gzipped_response(b'{"name": "J\\u00fcrgen"}'))
    dotnet = make_capture(response=response_bytes(headers={"Content-Type": "application/json"}, body=b'"J\\u00FCrgen"'))
    go = make_capture(
        response=response_bytes(headers={"Content-Type": "application/json"}, body=b'"a \\u003cb\\u003e"')
    )
    # Outside JSON an escape is what the screen shows: no match.
    make_capture(response=response_bytes(headers={"Content-Type": "text/plain"}, body=b"J\\u00fcrgen"))
    assert set(found(client, "?body=Jürgen")) == {python.id, dotnet.id}
    assert found(client, "?body=a <b>") == [go.id]


def test_body_reads_a_url_encoded_form_as_its_fields_show(client, make_capture) -> None:
    form = request_bytes(
        "POST", "/login", headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"user=J%C3%BCrgen+M"
    )
    hit = make_capture(method="POST", request=form)
    make_capture(
        method="POST", request=request_bytes("POST", "/x", headers={"Content-Type": "text/plain"}, body=b"J%C3%BCrgen")
    )
    assert found(client, "?body=Jürgen M") == [hit.id]


# --- one free-text box -----------------------------------------------------------------------------
def test_q_searches_path_headers_and_bodies_of_both_messages(client, make_capture) -> None:
    by_path = get(make_capture, "/users/J%C3%BCrgen")
    by_header = make_capture(
        request=request_bytes(headers={"X-User": "Jürgen"}).replace(b"J\xfcrgen", "Jürgen".encode())
    )
    by_body = make_capture(response=gzipped_response('{"user": "Jürgen"}'.encode()))
    make_capture(response=response_bytes(body=b"nobody"))
    assert set(found(client, "?q=Jürgen")) == {by_path.id, by_header.id, by_body.id}
    assert found(client, "?q=x-user: J") == []  # header lines are matched as shown, case as typed
    assert found(client, "?q=X-User: J") == [by_header.id]


def test_q_is_anded_with_the_structured_filters(client, make_capture) -> None:
    post = make_capture(method="POST", uri="/a", request=request_bytes("POST", "/a", body=b"order 77"), status=201)
    make_capture(method="GET", uri="/order-77", status=200)
    make_capture(method="POST", uri="/b", request=request_bytes("POST", "/b", body=b"order 77"), status=500)
    assert found(client, "?q=order 77&method=POST&status=2xx") == [post.id]


def test_a_search_says_how_far_it_went(client, make_capture, monkeypatch) -> None:
    import dashboard.inspector.capture_list as capture_list

    monkeypatch.setattr(capture_list, "SCAN_LIMIT", 3)
    monkeypatch.setattr(capture_list, "_SCAN_BATCH", 3)
    for _ in range(5):
        make_capture(response=gzipped_response(b"hay"))  # each a candidate: only decoding tells
    page = client.get("/inspect/captures.json?body=needle").json()
    assert page["captures"] == [] and page["next_before"] is not None
    search = page["search"]
    assert (search["checked"], search["finished"]) == (3, False)
    assert search["text"] == (
        "searched the newest 3 candidate capture(s), back to 2025-01-02 03:04:05 UTC; older ones as you scroll"
    )
    last = client.get(f"/inspect/captures.json?body=needle&before={page['next_before']}").json()
    assert (last["search"]["checked"], last["search"]["finished"]) == (2, True)
    assert client.get("/inspect/captures.json?path=x").json()["search"] is None


# --- invalid filters are reported, never dropped silently ----------------------------------------
@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?stauts=404", "'stauts' is not a filter (not applied): use q, path, method,"),
        ("?duration_min=-5", "duration_min '-5': a number of milliseconds, 0 or more, is expected"),
        ("?duration_max=nan", "duration_max 'nan': a number of milliseconds, 0 or more, is expected"),
        ("?method=G ET", "method 'G ET': an HTTP method (GET, POST...) is expected"),
        ("?header=:", "header ':': use Name, Name: value or : value"),
        ("?status=4x", "status '4x': use a code (404), a class (4xx) or pending"),
    ],
)
def test_a_filter_that_cannot_be_read_is_reported(client, make_capture, query, error) -> None:
    make_capture()
    body = client.get("/inspect/captures.json" + query).json()
    assert len(body["filter_errors"]) == 1
    assert body["filter_errors"][0].startswith(error)
    page = client.get("/inspect/http" + query)
    assert error.replace("'", "&#x27;") in page.content.decode()


def test_the_list_parameters_are_not_reported(client, make_capture) -> None:
    make_capture()
    body = client.get("/inspect/captures.json?limit=5&sort=-time&before=zzz&ids=a,b&at=").json()
    assert body["filter_errors"] == []


def test_clear_refuses_a_filter_it_cannot_read_rather_than_clearing_everything(client, make_capture) -> None:
    make_capture()
    response = client.post("/inspect/captures/clear?pth=/x")
    assert response.status_code == 400
    assert Capture.objects.count() == 1


# --- the admin finds the same -----------------------------------------------------------------------
@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client(HTTP_HOST="127.0.0.1:4040")
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def listed(response: Any) -> set[str]:
    return {capture.id for capture in response.context["cl"].result_list}


def test_the_admin_search_finds_a_gzip_body_and_a_decoded_path(admin_client, make_capture) -> None:
    by_body = make_capture(response=gzipped_response('{"user": "Jürgen"}'.encode()))
    by_path = get(make_capture, "/json?name=J%C3%BCrgen")
    plain = make_capture(response=response_bytes(body="Jürgen".encode()))
    make_capture(response=gzipped_response(b"nobody"))
    response = admin_client.get("/admin/agentapi/capture/", {"q": "Jürgen"})
    assert response.status_code == 200
    assert listed(response) == {by_body.id, by_path.id, plain.id}
    assert not list(response.context["messages"])


def test_the_admin_and_the_inspector_find_the_same(admin_client, client, make_capture) -> None:
    make_capture(response=gzipped_response(b'{"a": "J\\u00fcrgen"}'))
    get(make_capture, "/x?J%C3%BCrgen")
    make_capture(request=request_bytes(headers={"X-Who": "J%C3%BCrgen"}))
    make_capture(response=response_bytes(body=b"other"))
    admin = listed(admin_client.get("/admin/agentapi/capture/", {"q": "Jürgen"}))
    assert admin == set(found(client, "?q=Jürgen"))
    assert len(admin) == 2  # the header is shown as sent: percent signs and all


def test_the_admin_says_when_it_stopped_reading_bodies(admin_client, make_capture, monkeypatch) -> None:
    monkeypatch.setattr(capture_search, "SEARCH_SCAN_LIMIT", 2)
    old = make_capture(response=gzipped_response(b"needle"))
    newer = [make_capture(response=gzipped_response(b"hay")) for _ in range(2)]
    response = admin_client.get("/admin/agentapi/capture/", {"q": "needle"})
    assert old.id not in listed(response) and newer
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Compressed, JSON-escaped and form-encoded bodies were searched in the newest 2 ")
    assert "text stored as typed is searched in all" in message


def test_the_admin_search_reads_bodies_in_batches_not_a_query_a_row(admin_client, make_capture) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(30):
        make_capture(response=gzipped_response(b"hay"))
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/agentapi/capture/", {"q": "needle"}).status_code == 200
    reads = [q["sql"] for q in queries if '"response_raw" FROM "agentapi_capture"' in q["sql"]]
    assert len(reads) <= 2, reads[:3]


def test_the_page_says_when_a_search_stopped_before_the_oldest(client, make_capture, monkeypatch) -> None:
    import dashboard.inspector.capture_list as capture_list

    monkeypatch.setattr(capture_list, "SCAN_LIMIT", 2)
    monkeypatch.setattr(capture_list, "_SCAN_BATCH", 2)
    for _ in range(3):
        make_capture(response=gzipped_response(b"hay"))
    page = client.get("/inspect/http?body=needle").content.decode()
    assert '<p class="search-note muted" id="search-note" role="status">searched the newest 2 candidate' in page
    monkeypatch.setattr(capture_list, "SCAN_LIMIT", 10)
    assert 'id="search-note"' not in client.get("/inspect/http?body=needle").content.decode()


def listed_on_the_page(client: Client, query: dict[str, str]) -> list[str]:
    page = client.get("/inspect/http", query).content.decode()
    boot = re.search(r'<script id="inspector-boot" type="application/json">(.*?)</script>', page, re.S)
    assert boot is not None
    return [capture["id"] for capture in json.loads(boot.group(1))["page"]["captures"]]


def test_the_page_lists_what_the_json_finds_for_a_decoded_path_and_a_gzip_body(client, make_capture) -> None:
    by_path = get(make_capture, "/json?name=J%C3%BCrgen")
    by_body = make_capture(response=gzipped_response('{"user": "Jürgen"}'.encode()))
    make_capture(response=response_bytes(body=b"nobody"))
    assert listed_on_the_page(client, {"path": "Jürgen"}) == [by_path.id]
    assert listed_on_the_page(client, {"body": "Jürgen"}) == [by_body.id]
