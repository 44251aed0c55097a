"""HAR import: a HAR 1.2 file's entries become captures marked as imported; bounded; a bad file
gets one clear error and stores nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.test import Client

from agentapi.captures.message_body import parse_message
from agentapi.models import Capture
from agentapi.runtime import CAPTURES_GROUP
from dashboard.inspector import har_import
from dashboard.inspector.har_import import IMPORTED_ADDR, is_imported
from tests.inspector.conftest import request_bytes, response_bytes


def upload(client: Client, document: Any, name: str = "session.har") -> Any:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post("/inspect/import.har", {"har": SimpleUploadedFile(name, data, "application/json")})


def entry(**overrides: Any) -> dict[str, Any]:
    """An entry as Chrome saves one (HTTP/2: pseudo-headers, lower-case names, decoded content)."""
    base: dict[str, Any] = {
        "startedDateTime": "2025-03-04T05:06:07.123Z",
        "time": 42.5,
        "request": {
            "method": "POST",
            "url": "https://api.example.com/v1/hooks?x=1",
            "httpVersion": "http/2.0",
            "headers": [
                {"name": ":authority", "value": "api.example.com"},
                {"name": ":method", "value": "POST"},
                {"name": "content-type", "value": "application/json"},
                {"name": "content-length", "value": "999"},
                {"name": "x-user", "value": "André"},
            ],
            "postData": {"mimeType": "application/json", "text": '{"amount": 4200}'},
        },
        "response": {
            "status": 201,
            "statusText": "",
            "headers": [
                {"name": "content-type", "value": "application/json"},
                {"name": "content-encoding", "value": "gzip"},
            ],
            "content": {"size": 11, "mimeType": "application/json", "text": '{"ok": true}'},
        },
    }
    base.update(overrides)
    return base


def exported(client: Client, query: str = "") -> bytes:
    response = client.get("/inspect/export.har" + query)
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(cast(Iterator[bytes], response.streaming_content))


def har(*entries: Any) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": list(entries)}}


@pytest.mark.django_db
def test_entries_become_captures_marked_as_imported(client: Client) -> None:
    response = upload(client, har(entry(), entry(time=1)))
    assert response.status_code == 201, response.content
    answer = response.json()
    assert (answer["imported"], answer["tunnel_name"]) == (2, "imported: session.har")
    assert answer["list_url"] == "/inspect/http?tunnel=imported%3A+session.har"
    first = Capture.objects.get(id=answer["ids"][0])
    assert is_imported(first) and first.remote_addr == IMPORTED_ADDR
    assert (first.method, first.uri, first.status_code, first.duration_ns) == ("POST", "/v1/hooks?x=1", 201, 42_500_000)
    assert first.start.isoformat() == "2025-03-04T05:06:07.123000+00:00"
    request = parse_message(bytes(first.request_raw), response=False)
    assert request.head.target == "/v1/hooks?x=1"
    assert request.headers == [
        ("Host", "api.example.com"),
        ("content-type", "application/json"),
        ("x-user", "André"),
        ("X-Forwarded-Host", "api.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("Content-Length", "16"),
    ]
    assert request.body == b'{"amount": 4200}'
    reply = parse_message(bytes(first.response_raw or b""), response=True)
    # HAR's content is decoded: the coding is dropped with the framing, the length written anew.
    assert reply.headers == [("content-type", "application/json"), ("Content-Length", "12")]
    assert reply.body == b'{"ok": true}'
    # Ids are new and in file order, so the list shows the file's last entry first.
    assert answer["ids"] == sorted(answer["ids"])


@pytest.mark.django_db
def test_the_list_filters_on_the_import(client: Client, make_capture: Callable[..., Capture]) -> None:
    make_capture(uri="/live")
    answer = upload(client, har(entry())).json()
    listed = client.get("/inspect/captures.json", {"tunnel": answer["tunnel_name"]}).json()["captures"]
    assert [row["id"] for row in listed] == answer["ids"]
    assert client.get(f"/inspect/captures/{answer['ids'][0]}.json").status_code == 200


@pytest.mark.django_db
def test_our_own_export_imports_back_to_the_same_exchanges(
    client: Client, make_capture: Callable[..., Capture]
) -> None:
    binary = bytes(range(256))
    make_capture(
        method="PUT",
        uri="/blob?v=2",
        request=request_bytes("PUT", "/blob?v=2", headers={"Content-Type": "application/octet-stream"}, body=binary),
        response=response_bytes(200, headers={"Content-Type": "image/png"}, body=b"\x89PNG\x00\xff"),
    )
    make_capture(uri="/pending", status=None, response=None)
    answer = upload(client, exported(client), "export.har").json()
    assert answer["imported"] == 2
    blob, pending = (Capture.objects.get(id=i) for i in answer["ids"])
    assert parse_message(bytes(blob.request_raw), response=False).body == binary
    assert parse_message(bytes(blob.response_raw or b""), response=True).body == b"\x89PNG\x00\xff"
    assert (pending.response_raw, pending.response_complete) == (None, False)
    again = json.loads(exported(client, "?tunnel=imported: export.har"))
    assert [e["request"]["url"] for e in again["log"]["entries"]] == [
        "https://demo.example:5000/blob?v=2",
        "https://demo.example:5000/pending",
    ]


@pytest.mark.django_db
def test_base64_content_is_decoded(client: Client) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00"
    response = entry()["response"] | {
        "content": {"mimeType": "image/png", "encoding": "base64", "text": base64.b64encode(png).decode()}
    }
    answer = upload(client, har(entry(response=response))).json()
    stored = Capture.objects.get(id=answer["ids"][0])
    assert parse_message(bytes(stored.response_raw or b""), response=True).body == png


@pytest.mark.django_db
def test_a_side_past_the_capture_limit_is_cut_with_its_true_size(client: Client, settings) -> None:
    settings.AGENT_CAPTURE_LIMIT = 100
    request = entry()["request"] | {"postData": {"mimeType": "text/plain", "text": "x" * 500}}
    stored = Capture.objects.get(id=upload(client, har(entry(request=request))).json()["ids"][0])
    assert len(stored.request_raw) == 100
    assert stored.request_size > 500 and stored.request_truncated


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            b"{not json",
            "not a HAR file: not JSON (line 1, column 2: Expecting property name enclosed in double quotes)",
        ),
        (b"\xff\xfe", "not a HAR file: not UTF-8 text"),
        ({"log": {}}, "not a HAR file: it has no log.entries list"),
        (har(), "the HAR file has no entries"),
        (har(entry(), "x"), "entry 2: an object is expected"),
        (
            har(entry(request={"method": "GET", "url": "/relative"})),
            "entry 1: request.url '/relative' is not an absolute http(s) URL",
        ),
        (
            har(entry(request={"method": "GE T", "url": "http://a/"})),
            "entry 1: request.method 'GE T' is not an HTTP method",
        ),
        (har(entry(startedDateTime="yesterday")), "entry 1: startedDateTime 'yesterday' is not an ISO 8601 date"),
        (
            har(entry(response={"status": 200, "headers": [], "content": {"encoding": "base64", "text": "***"}})),
            "entry 1: response.content.text is not valid base64",
        ),
        (
            har(
                entry(
                    request={"method": "GET", "url": "http://a/", "headers": [{"name": "X-A", "value": "a\r\nX-B: b"}]}
                )
            ),
            "entry 1: request.headers[0] (X-A): control characters in the value",
        ),
        (har(entry(response={"status": "ok"})), "entry 1: response.status 'ok' is not an HTTP status"),
        (har(entry(time="slow")), "entry 1: time must be a number of milliseconds"),
    ],
)
def test_a_bad_file_is_refused_with_a_reason_and_stores_nothing(client: Client, document: Any, message: str) -> None:
    response = upload(client, document)
    assert (response.status_code, response.json()) == (400, {"error": message})
    assert not Capture.objects.exists()


@pytest.mark.django_db
def test_imports_are_bounded_in_entries(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(har_import, "MAX_ENTRIES", 2)
    response = upload(client, har(entry(), entry(), entry()))
    assert response.json() == {"error": "the HAR file has 3 entries; an import takes at most 2"}


@pytest.mark.django_db
def test_imports_are_bounded_in_bytes(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(har_import, "MAX_BYTES", 1000)
    monkeypatch.setattr("dashboard.inspector.tool_views.MAX_BYTES", 1000)
    response = upload(client, har(*[entry() for _ in range(10)]))
    assert response.status_code == 413
    assert response.json()["error"].endswith("; a HAR import takes at most 0.0 MB")


@pytest.mark.django_db
def test_an_upload_without_the_file_is_refused(client: Client) -> None:
    response = client.post("/inspect/import.har", {"other": "x"})
    assert (response.status_code, response.json()) == (
        400,
        {"error": "no file: send the HAR file as the form field har"},
    )


@pytest.mark.django_db
def test_the_import_needs_the_csrf_token() -> None:
    client = Client(HTTP_HOST="127.0.0.1:4040", enforce_csrf_checks=True)
    assert upload(client, har(entry())).status_code == 403


@pytest.mark.django_db
def test_open_inspectors_get_the_imported_rows_as_new_captures(
    client: Client, settings: Any, request: pytest.FixtureRequest
) -> None:
    # A channel made outside a consumer: the in-memory layer's (the Redis layer of REDIS_URL only
    # hands out channels to consumers); the Redis layer itself is exercised by tests/services.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    request.addfinalizer(channel_layers.backends.clear)  # later tests get the configured layer
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(CAPTURES_GROUP, channel)
    answer = upload(client, har(entry(), entry(time=3))).json()
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "captures.stored"
    assert [row["id"] for row in message["created"]] == answer["ids"]
    assert message["created"][0]["tunnel_name"] == "imported: session.har"
