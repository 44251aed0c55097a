"""The detail endpoint: both messages taken apart and rendered on the server."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import brotli
import pytest
import zstandard
from django.test import Client

from agentapi.models import Capture
from tests.inspector.conftest import request_bytes, response_bytes

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def detail(client: Client, capture: Capture) -> dict[str, Any]:
    response = client.get(f"/inspect/captures/{capture.id}.json")
    assert response.status_code == 200
    return response.json()


def test_an_unknown_id_is_404_not_500(client, db) -> None:
    assert client.get("/inspect/captures/airt_nope.json").status_code == 404


def test_it_shows_query_parameters_headers_in_order_and_sizes(client, make_capture) -> None:
    capture = make_capture(
        uri="/search?q=a+b&tag=1&tag=2&empty=",
        request=request_bytes("GET", "/search?q=a+b&tag=1&tag=2&empty=", headers={"B-Second": "2", "A-First": "1"}),
        response=response_bytes(headers={"Content-Type": "text/plain; charset=utf-8"}, body=b"hello"),
    )
    body = detail(client, capture)
    request = body["request"]
    assert request["method"] == "GET"
    assert request["query"] == [["q", "a b"], ["tag", "1"], ["tag", "2"], ["empty", ""]]
    names = [name for name, _ in request["headers"]]
    assert names.index("B-Second") < names.index("A-First")
    response = body["response"]
    assert (response["status"], response["body_size"], response["content_type"]) == (
        200,
        5,
        "text/plain; charset=utf-8",
    )
    assert response["body_view"] == {"view": "text", "text": "hello", "note": ""}
    assert response["truncated"] is False


def test_json_is_pretty_printed(client, make_capture) -> None:
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "application/json"}, body=b'{"a":1,"b":[true,null]}')
    )
    view = detail(client, capture)["response"]["body_view"]
    assert view["view"] == "json"
    assert view["text"] == json.dumps({"a": 1, "b": [True, None]}, indent=2)
    assert "error" not in view


def test_a_json_syntax_error_is_located(client, make_capture) -> None:
    text = '{\n  "a": 1,\n  "b": [1, 2,]\n}'
    capture = make_capture(
        method="POST",
        request=request_bytes("POST", "/", headers={"Content-Type": "application/json"}, body=text.encode()),
    )
    view = detail(client, capture)["request"]["body_view"]
    assert view["view"] == "json"
    assert view["text"] == text
    error = view["error"]
    assert (error["line"], error["column"]) == (3, 14)
    assert text[error["offset"]] == "]"


def test_xml_is_pretty_printed_and_its_errors_located(client, make_capture) -> None:
    good = make_capture(response=response_bytes(headers={"Content-Type": "application/xml"}, body=b"<a><b>1</b></a>"))
    assert detail(client, good)["response"]["body_view"]["text"] == '<?xml version="1.0" ?>\n<a>\n  <b>1</b>\n</a>'
    text = "<a>\n<b>1</c>\n</a>"
    bad = make_capture(response=response_bytes(headers={"Content-Type": "text/xml"}, body=text.encode()))
    view = detail(client, bad)["response"]["body_view"]
    assert view["error"]["line"] == 2
    assert text[view["error"]["offset"] :].startswith("c>")  # expat points at the wrong name


def test_form_fields_are_a_table(client, make_capture) -> None:
    capture = make_capture(
        method="POST",
        request=request_bytes(
            "POST",
            "/login",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=b"user=jo+e&pw=%21x&pw=2",
        ),
    )
    request = detail(client, capture)["request"]
    assert request["form"] == [["user", "jo e"], ["pw", "!x"], ["pw", "2"]]
    assert request["body_view"]["view"] == "form"


def test_multipart_fields_and_files(client, make_capture) -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n"
    )
    capture = make_capture(
        method="POST",
        request=request_bytes("POST", "/up", headers={"Content-Type": "multipart/form-data; boundary=XyZ"}, body=body),
    )
    form = detail(client, capture)["request"]["form"]
    assert form[0] == ["title", "hello"]
    assert form[1][0] == "file"
    assert "a.bin" in form[1][1]
    assert "3 bytes" in form[1][1]


def test_chunked_bodies_are_dechunked_and_gzip_decoded(client, make_capture) -> None:
    payload = gzip.compress(b'{"ok": true}')
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    capture = make_capture(
        response=response_bytes(
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
            body=chunked,
        )
    )
    response = detail(client, capture)["response"]
    assert response["body_view"]["text"] == '{\n  "ok": true\n}'
    assert response["content_encoding"] == "gzip"
    assert any("gzip" in note for note in response["notes"])


def test_a_cut_message_says_how_much_was_captured(client, make_capture) -> None:
    raw = response_bytes(headers={"Content-Type": "text/plain"}, body=b"x" * 100)
    capture = make_capture(response=raw[:-40], response_size=len(raw))
    response = detail(client, capture)["response"]
    assert response["truncated"] is True
    assert (response["captured"], response["size"]) == (len(raw) - 40, len(raw))


def test_binary_is_a_hex_dump_of_8_bytes_a_line(client, make_capture) -> None:
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "application/octet-stream"}, body=bytes(range(20)))
    )
    response = detail(client, capture)["response"]
    lines = response["hex"]["text"].splitlines()
    assert lines[0] == "00000000  00 01 02 03 04 05 06 07  ........"
    assert lines[2] == "00000010  10 11 12 13              ...."
    assert response["body_view"]["view"] == "hex"


def test_images_are_shown_from_the_body_endpoint(client, make_capture) -> None:
    capture = make_capture(response=response_bytes(headers={"Content-Type": "image/png"}, body=PNG))
    response = detail(client, capture)["response"]
    assert response["body_view"] == {"view": "image", "mime_type": "image/png"}
    image = client.get(response["urls"]["body"])
    assert image["Content-Type"] == "image/png"
    assert image.content == PNG
    assert "sandbox" in image["Content-Security-Policy"]
    assert image["X-Content-Type-Options"] == "nosniff"


def test_other_bodies_download_instead_of_rendering_on_our_origin(client, make_capture) -> None:
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "text/html"}, body=b"<script>alert(1)</script>")
    )
    body = client.get(f"/inspect/captures/{capture.id}/response/body")
    assert body["Content-Type"] == "application/octet-stream"
    assert body["Content-Disposition"].startswith("attachment")


def test_raw_messages_download_byte_for_byte(client, make_capture) -> None:
    raw = request_bytes("PUT", "/x", body=b"\x00\xffdata")
    capture = make_capture(method="PUT", request=raw)
    download = client.get(f"/inspect/captures/{capture.id}/request.raw")
    assert download.content == raw
    assert download["Content-Disposition"] == f'attachment; filename="{capture.id}-request.http"'
    pending = make_capture(response=None, status=None)
    assert client.get(f"/inspect/captures/{pending.id}/response.raw").status_code == 404


def test_a_pending_capture_has_no_response_yet(client, make_capture) -> None:
    capture = make_capture(response=None, status=None)
    assert detail(client, capture)["response"] is None


# --- text as it was sent, content codings, capture truth ------------------------------------------
def utf8_request(headers: dict[str, str]) -> bytes:
    """request_bytes with header values sent as UTF-8 (the helper writes Latin-1)."""
    head, _, body = request_bytes("GET", "/", headers=headers).partition(b"\r\n\r\n")
    return head.decode("latin-1").encode("utf-8") + b"\r\n\r\n" + body


def test_utf8_header_values_are_shown_as_sent(client, make_capture) -> None:
    capture = make_capture(
        request=utf8_request({"X-User": "André"}),
        response=response_bytes(
            headers={"Content-Disposition": 'attachment; filename="résumé.pdf"'}, body=b"%PDF"
        ).replace("résumé".encode("latin-1"), "résumé".encode()),
    )
    body = detail(client, capture)
    assert ["X-User", "André"] in body["request"]["headers"]
    assert ["Content-Disposition", 'attachment; filename="résumé.pdf"'] in body["response"]["headers"]
    assert body["response"]["filename"] == "résumé.pdf"


def test_header_bytes_that_are_not_utf8_show_as_hex_escapes(client, make_capture) -> None:
    capture = make_capture(request=request_bytes(headers={"X-User": "André"}))  # Latin-1 é: 0xE9
    assert ["X-User", "Andr\\xe9"] in detail(client, capture)["request"]["headers"]


def test_an_rfc_8187_file_name_is_decoded(client, make_capture) -> None:
    capture = make_capture(
        response=response_bytes(
            headers={
                "Content-Disposition": "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
            },
            body=b"%PDF",
        )
    )
    assert detail(client, capture)["response"]["filename"] == "résumé.pdf"


def test_multipart_file_names_are_utf8_and_rfc_8187(client, make_capture) -> None:
    body = (
        '--XyZ\r\nContent-Disposition: form-data; name="cv"; filename="résumé.pdf"\r\n\r\n%PDF\r\n'
        "--XyZ\r\nContent-Disposition: form-data; name=\"b\"; filename*=UTF-8''%C3%A9t%C3%A9.txt\r\n\r\nx\r\n--XyZ--\r\n"
    ).encode()
    capture = make_capture(
        method="POST",
        request=request_bytes("POST", "/up", headers={"Content-Type": "multipart/form-data; boundary=XyZ"}, body=body),
    )
    parts = detail(client, capture)["request"]["body_view"]["parts"]
    assert [part["filename"] for part in parts] == ["résumé.pdf", "été.txt"]


JSON_BODY = '{"user":"André","items":[1,2,3]}'.encode()
PRETTY = json.dumps({"user": "André", "items": [1, 2, 3]}, indent=2, ensure_ascii=False)


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("br", brotli.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
        ("deflate", zlib.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
)
def test_a_compressed_json_response_is_pretty_printed_with_both_sizes(client, make_capture, coding, encode) -> None:
    wire = encode(JSON_BODY)
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "application/json", "Content-Encoding": coding}, body=wire)
    )
    response = detail(client, capture)["response"]
    assert response["body_view"]["view"] == "json"
    assert response["body_view"]["text"] == PRETTY
    assert "error" not in response["body_view"]
    assert (response["body_size"], response["decoded_size"], response["decoded_cut"]) == (
        len(wire),
        len(JSON_BODY),
        False,
    )
    assert response["content_encoding"] == coding
    assert f"decoded from {coding}" in response["notes"]
    # The Binary tab stays the bytes that crossed.
    assert response["hex"]["text"].startswith("00000000  " + " ".join(f"{b:02x}" for b in wire[:8]))


def test_an_uncompressed_body_has_no_decoded_size(client, make_capture) -> None:
    capture = make_capture(response=response_bytes(headers={"Content-Type": "text/plain"}, body=b"plain"))
    response = detail(client, capture)["response"]
    assert (response["decoded_size"], response["decoded_cut"]) == (None, False)


def test_a_bomb_is_cut_at_the_decoded_body_limit_and_flagged(client, make_capture, settings) -> None:
    settings.AGENT_DECODED_BODY_LIMIT = 4096
    wire = zstandard.ZstdCompressor().compress(bytes(10 * 1024 * 1024))
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "text/plain", "Content-Encoding": "zstd"}, body=wire)
    )
    response = detail(client, capture)["response"]
    assert (response["decoded_size"], response["decoded_cut"]) == (4096, True)
    assert "decoded body cut at 4096 bytes" in response["notes"]


def test_a_body_that_is_not_what_its_coding_says_is_shown_as_stored(client, make_capture) -> None:
    capture = make_capture(
        response=response_bytes(headers={"Content-Type": "text/plain", "Content-Encoding": "br"}, body=b"plain text")
    )
    response = detail(client, capture)["response"]
    assert response["body_view"]["text"] == "plain text"
    assert response["decoded_size"] is None
    assert any(note.startswith("could not undo br") for note in response["notes"])


def test_a_whole_capture_has_no_banner(client, make_capture) -> None:
    body = detail(client, make_capture())
    assert body["banners"] == []
    assert (body["request"]["complete"], body["response"]["complete"]) == (True, True)


def test_an_incomplete_capture_says_which_side_and_why(client, make_capture) -> None:
    capture = make_capture(response=None, status=None)
    reason = "the client closed the connection before the request body was sent"
    Capture.objects.filter(id=capture.id).update(request_complete=False, incomplete_reason=reason)
    body = detail(client, Capture.objects.get(id=capture.id))
    assert body["banners"] == [
        {"kind": "incomplete", "side": "request", "text": f"The request is incomplete: {reason}."}
    ]
    assert body["request"]["complete"] is False
    assert body["request_complete"] is False and body["incomplete_reason"] == reason


def test_a_truncated_side_shows_the_true_and_the_stored_size(client, make_capture) -> None:
    raw = response_bytes(headers={"Content-Type": "text/plain"}, body=b"x" * 100)
    capture = make_capture(response=raw[:-40], response_size=len(raw))
    (banner,) = detail(client, capture)["banners"]
    assert banner["kind"] == "truncated" and banner["side"] == "response"
    assert f"was {len(raw)} bytes; the first {len(raw) - 40} were stored" in banner["text"]
