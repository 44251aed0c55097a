"""The detail endpoint: both messages taken apart and rendered on the server."""

from __future__ import annotations

import gzip
import json

from tests.inspector.conftest import request_bytes, response_bytes

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def detail(client, capture) -> dict:
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
