"""Body views through the inspector's endpoints and the admin: checked whole, drawn cut, parts downloadable."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agentapi.captures.body_text import MAX_TEXT
from agentapi.models import Capture
from tests.inspector.conftest import request_bytes, response_bytes


def detail(client: Client, capture: Capture) -> dict[str, Any]:
    response = client.get(f"/inspect/captures/{capture.id}.json")
    assert response.status_code == 200
    return response.json()


def json_of(size: int) -> bytes:
    row = json.dumps({"name": "Jürgen", "n": [1, 2, 3], "ok": True}, ensure_ascii=False).encode()
    return b"[" + b",".join([row] * (size // (len(row) + 1))) + b"]"


BIG = json_of(868 * 1024)


@pytest.mark.parametrize("coding", ["", "gzip"])
def test_valid_json_of_868_kb_is_drawn_cut_and_never_called_a_syntax_error(client, make_capture, coding) -> None:
    headers = {"Content-Type": "application/json"}
    wire = BIG
    if coding:
        headers["Content-Encoding"] = coding
        wire = gzip.compress(BIG)
    capture = make_capture(response=response_bytes(headers=headers, body=wire))
    response = detail(client, capture)["response"]
    view = response["body_view"]
    assert view["view"] == "json"
    assert "error" not in view
    assert len(view["text"]) == MAX_TEXT
    assert view["note"] == f"showing the first {MAX_TEXT:,} characters of the formatted body"
    assert view["checked"] == f"syntax checked over all {len(BIG):,} bytes"
    assert response["body_complete"] is True
    assert response["body_size"] == len(wire)
    assert response["decoded_size"] == (len(BIG) if coding else None)


def test_a_json_body_cut_by_the_capture_limit_is_not_a_syntax_error(client, make_capture) -> None:
    raw = response_bytes(headers={"Content-Type": "application/json"}, body=BIG)
    capture = make_capture(response=raw[: 600 * 1024], response_size=len(raw))
    response = detail(client, capture)["response"]
    assert response["body_complete"] is False
    assert "error" not in response["body_view"]
    assert "the body was cut at" in response["body_view"]["note"]


def test_the_admin_page_of_a_big_json_capture_shows_no_syntax_error(make_capture, db) -> None:
    capture = make_capture(response=response_bytes(headers={"Content-Type": "application/json"}, body=BIG))
    admin = Client(HTTP_HOST="127.0.0.1:4040")
    admin.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    page = admin.get(f"/admin/agentapi/capture/{capture.id}/change/")
    assert page.status_code == 200
    assert b"syntax error" not in page.content
    assert f"showing the first {MAX_TEXT:,} characters of the formatted body".encode() in page.content


def test_html_bodies_get_the_html_view(client, make_capture) -> None:
    page = b"<!doctype html>\n<html>\n  <body><p>hi</p></body>\n</html>"
    capture = make_capture(response=response_bytes(headers={"Content-Type": "text/html"}, body=page))
    assert detail(client, capture)["response"]["body_view"] == {"view": "html", "text": page.decode(), "note": ""}


def test_the_request_carries_the_url_the_client_used(client, make_capture) -> None:
    capture = make_capture(uri="/json?name=J%C3%BCrgen", request=request_bytes("GET", "/json?name=J%C3%BCrgen"))
    assert detail(client, capture)["request"]["url"] == "https://demo.example:5000/json?name=J%C3%BCrgen"


UPLOAD = (
    b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="cv"; filename="r\xc3\xa9sum\xc3\xa9.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\x00\xff\r\n--XyZ--\r\n"
)


def upload(make_capture) -> Capture:
    return make_capture(
        method="POST",
        request=request_bytes(
            "POST", "/up", headers={"Content-Type": "multipart/form-data; boundary=XyZ"}, body=UPLOAD
        ),
    )


def test_multipart_parts_are_listed_with_a_download_each(client, make_capture) -> None:
    capture = upload(make_capture)
    parts = detail(client, capture)["request"]["body_view"]["parts"]
    base = f"/inspect/captures/{capture.id}/request/parts/"
    assert [(p["name"], p["filename"], p["content_type"], p["size"], p["download"]) for p in parts] == [
        ("title", None, "", 5, base + "0"),
        ("cv", "résumé.pdf", "application/pdf", 10, base + "1"),
    ]


def test_a_part_downloads_byte_for_byte_under_its_file_name(client, make_capture) -> None:
    capture = upload(make_capture)
    part = client.get(f"/inspect/captures/{capture.id}/request/parts/1")
    assert part.status_code == 200
    assert part.content == b"%PDF-1.4\x00\xff"
    assert part["Content-Disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"
    assert part["Content-Type"] == "application/octet-stream"
    assert part["X-Content-Type-Options"] == "nosniff"
    field = client.get(f"/inspect/captures/{capture.id}/request/parts/0")
    assert (field.content, field["Content-Disposition"]) == (
        b"hello",
        f'attachment; filename="{capture.id}-request-part0"',
    )


def test_a_part_that_is_not_there_is_404_with_a_reason(client, make_capture) -> None:
    capture = upload(make_capture)
    missing = client.get(f"/inspect/captures/{capture.id}/request/parts/2")
    assert missing.status_code == 404
    assert missing.json() == {"error": "the request body has 2 multipart part(s); there is no part 2"}
    assert client.get(f"/inspect/captures/{capture.id}/response/parts/0").status_code == 404
