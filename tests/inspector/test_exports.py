"""Copy as curl (shell-quoted) and HAR 1.2 for one capture or the filtered list."""

from __future__ import annotations

import base64
import gzip
import json
import shlex
import subprocess
from typing import Any

import brotli
import zstandard
from django.test import Client

from agentapi.models import Capture
from tests.inspector.conftest import request_bytes, response_bytes


def curl_of(client: Client, capture: Capture) -> str:
    response = client.get(f"/inspect/captures/{capture.id}/curl")
    assert response.status_code == 200
    return response.content.decode()


def test_curl_uses_the_public_url_and_quotes_every_argument(client, make_capture) -> None:
    capture = make_capture(
        method="POST",
        uri="/hooks/x?a=1&b=it's",
        request=request_bytes(
            "POST",
            "/hooks/x?a=1&b=it's",
            headers={"Content-Type": "application/json", "X-Quote": "a 'b' $HOME `x`"},
            body=b'{"msg": "it\'s $(rm -rf /)"}',
        ),
    )
    command = curl_of(client, capture).strip()
    args = shlex.split(command)
    assert args[:4] == ["curl", "-X", "POST", "https://demo.example:5000/hooks/x?a=1&b=it's"]
    assert args[args.index("X-Quote: a 'b' $HOME `x`") - 1] == "-H"
    assert args[-2:] == ["--data-binary", '{"msg": "it\'s $(rm -rf /)"}']
    # The agent's own headers and the framing are curl's business, not copied.
    assert not any(a.lower().startswith(("host:", "content-length:", "x-forwarded-")) for a in args)


def test_curl_of_a_binary_body_pipes_it_through_printf(client, make_capture) -> None:
    body = b"\x00\x01binary\\\xff'"
    capture = make_capture(method="PUT", request=request_bytes("PUT", "/blob", body=body))
    command = curl_of(client, capture).strip()
    assert command.startswith("printf %b ")
    assert command.endswith("--data-binary @-")
    printf_part = command.split(" | ", 1)[0]
    out = subprocess.run(["sh", "-c", printf_part], capture_output=True, check=True).stdout
    assert out == body


def test_curl_of_a_get_has_no_method_flag(client, make_capture) -> None:
    capture = make_capture(uri="/")
    assert shlex.split(curl_of(client, capture))[:2] == ["curl", "https://demo.example:5000/"]


def test_har_of_one_capture(client, make_capture) -> None:
    capture = make_capture(
        method="POST",
        uri="/form?x=1",
        request=request_bytes(
            "POST",
            "/form?x=1",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": "a=1; b=2"},
            body=b"name=jo",
        ),
        response=response_bytes(
            201, headers={"Content-Type": "image/png", "Set-Cookie": "sid=abc; Path=/"}, body=b"\x89PNG\x00"
        ),
        status=201,
        duration_ms=42.5,
    )
    response = client.get(f"/inspect/captures/{capture.id}.har")
    assert response["Content-Disposition"] == f'attachment; filename="{capture.id}.har"'
    log = json.loads(response.content)["log"]
    assert log["version"] == "1.2"
    (entry,) = log["entries"]
    assert entry["time"] == 42.5
    assert entry["startedDateTime"] == "2025-01-02T03:04:05.000Z"
    request = entry["request"]
    assert request["url"] == "https://demo.example:5000/form?x=1"
    assert request["queryString"] == [{"name": "x", "value": "1"}]
    assert request["cookies"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert request["postData"]["params"] == [{"name": "name", "value": "jo"}]
    assert request["bodySize"] == 7
    reply = entry["response"]
    assert reply["status"] == 201
    assert reply["cookies"] == [{"name": "sid", "value": "abc"}]
    assert reply["content"]["encoding"] == "base64"
    assert base64.b64decode(reply["content"]["text"]) == b"\x89PNG\x00"
    for key in ("cache", "timings"):
        assert key in entry


def test_har_of_the_filtered_list_is_oldest_first(client, make_capture) -> None:
    first = make_capture(uri="/api/1")
    make_capture(uri="/other")
    pending = make_capture(uri="/api/2", status=None, response=None)
    response = client.get("/inspect/export.har?path=/api")
    entries = json.loads(b"".join(response.streaming_content))["log"]["entries"]
    assert [entry["_id"] for entry in entries] == [first.id, pending.id]
    assert entries[1]["response"]["status"] == 0


def test_har_notes_a_cut_capture(client, make_capture) -> None:
    raw = response_bytes(body=b"y" * 50)
    capture = make_capture(response=raw[:-10], response_size=len(raw))
    entry = json.loads(client.get(f"/inspect/captures/{capture.id}.har").content)["log"]["entries"][0]
    assert f"{len(raw) - 10} of {len(raw)} bytes" in entry["comment"]


# --- text as sent, decoded content, capture truth ------------------------------------------------
def har_entry_of(client: Client, capture: Capture) -> dict[str, Any]:
    return json.loads(client.get(f"/inspect/captures/{capture.id}.har").content)["log"]["entries"][0]


def with_utf8_head(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1").encode("utf-8") + b"\r\n\r\n" + body


def test_curl_gives_utf8_header_values_as_text(client, make_capture) -> None:
    capture = make_capture(request=with_utf8_head(request_bytes(headers={"X-User": "André"})))
    args = shlex.split(curl_of(client, capture))
    assert args[args.index("X-User: André") - 1] == "-H"


def test_curl_gives_other_header_bytes_back_exactly(client, make_capture) -> None:
    capture = make_capture(request=request_bytes(headers={"X-User": "André"}))  # Latin-1: 0xE9
    command = curl_of(client, capture).strip()
    # Run the command with a stand-in curl that prints its arguments as bytes.
    script = 'curl() { for arg in "$@"; do printf "%s\\n" "$arg"; done; }; ' + command
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert b"X-User: Andr\xe9\n" in out.splitlines(keepends=True)


def test_har_headers_are_utf8_text(client, make_capture) -> None:
    capture = make_capture(
        request=with_utf8_head(request_bytes(headers={"X-User": "André"})),
        response=response_bytes(headers={"X-Bad": "Andr\xe9"}),
    )
    entry = har_entry_of(client, capture)
    assert {"name": "X-User", "value": "André"} in entry["request"]["headers"]
    assert {"name": "X-Bad", "value": "Andr\\xe9"} in entry["response"]["headers"]


def test_har_content_text_is_the_decoded_body(client, make_capture) -> None:
    text = '{"name": "André"}'.encode()
    wire = brotli.compress(gzip.compress(text))
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "application/json", "Content-Encoding": "gzip, br"}, body=wire)
    )
    response = har_entry_of(client, capture)["response"]
    content = response["content"]
    assert content["text"] == '{"name": "André"}'
    assert content["size"] == len(text)
    assert content["compression"] == len(text) - len(wire)
    assert response["bodySize"] == len(wire)
    assert "_decodedCut" not in content


def test_har_flags_a_decoded_body_cut_at_the_limit(client, make_capture, settings) -> None:
    settings.AGENT_DECODED_BODY_LIMIT = 1000
    wire = zstandard.ZstdCompressor().compress(b"a" * 100_000)
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "text/plain", "Content-Encoding": "zstd"}, body=wire)
    )
    content = har_entry_of(client, capture)["response"]["content"]
    assert (content["size"], content["_decodedCut"], content["text"]) == (1000, True, "a" * 1000)


def test_har_marks_truncated_sides_and_keeps_the_true_body_size(client, make_capture) -> None:
    request = request_bytes("POST", "/up", body=b"z" * 300)
    capture = make_capture(method="POST", request=request[:-100], request_size=len(request))
    entry = har_entry_of(client, capture)
    head_size = len(request) - 300
    assert entry["request"]["bodySize"] == 300
    assert entry["request"]["headersSize"] == head_size
    assert (entry["request"]["_truncated"], entry["request"]["_storedSize"]) == (True, len(request) - 100)
    assert "_truncated" not in entry["response"]
    assert "_incomplete" not in entry["request"]


def test_har_marks_incomplete_sides_with_the_reason(client, make_capture) -> None:
    capture = make_capture(response=None, status=None)
    reason = "the service closed the connection before it answered"
    Capture.objects.filter(id=capture.id).update(response_complete=False, incomplete_reason=reason)
    entry = har_entry_of(client, capture)
    assert entry["response"]["_incomplete"] is True
    assert entry["response"]["status"] == 0
    assert "_incomplete" not in entry["request"]
    assert entry["_incompleteReason"] == reason
    assert f"response incomplete: {reason}" in entry["comment"]


def test_curl_of_an_incomplete_request_says_so_first(client, make_capture) -> None:
    capture = make_capture(response=None, status=None)
    reason = "the client closed the connection before the request body was sent"
    Capture.objects.filter(id=capture.id).update(request_complete=False, incomplete_reason=reason)
    assert curl_of(client, capture).startswith(f"# the request is incomplete: {reason}\ncurl ")
