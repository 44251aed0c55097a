"""Copy as curl (shell-quoted) and HAR 1.2 for one capture or the filtered list."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess

from tests.inspector.conftest import request_bytes, response_bytes


def curl_of(client, capture) -> str:
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
    entries = json.loads(response.content)["log"]["entries"]
    assert [entry["_id"] for entry in entries] == [first.id, pending.id]
    assert entries[1]["response"]["status"] == 0


def test_har_notes_a_cut_capture(client, make_capture) -> None:
    raw = response_bytes(body=b"y" * 50)
    capture = make_capture(response=raw[:-10], response_size=len(raw))
    entry = json.loads(client.get(f"/inspect/captures/{capture.id}.har").content)["log"]["entries"][0]
    assert f"{len(raw) - 10} of {len(raw)} bytes" in entry["comment"]
