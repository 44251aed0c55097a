"""Content views: syntax checked on the whole body, only the drawing cut; multipart parts as spans."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agentapi.captures import multipart, syntax_views
from agentapi.captures.body_text import MAX_TEXT
from agentapi.captures.content_views import Body, multipart_parts, render_best


def big_json(size: int) -> bytes:
    """A valid JSON array of about `size` bytes, with non-ASCII text in it."""
    item = {"name": "Jürgen", "tags": ["a", "b"], "n": 1.10, "ok": True}
    one = json.dumps(item, ensure_ascii=False).encode()
    count = size // (len(one) + 1)
    return b"[" + b",".join([one] * count) + b"]"


# --- JSON ---------------------------------------------------------------------------------------
def test_valid_json_of_868_kb_is_not_called_a_syntax_error_at_the_display_cut() -> None:
    data = big_json(868 * 1024)
    assert len(data) > MAX_TEXT
    view = render_best(Body(data, "application/json"))
    assert view["view"] == "json"
    assert "error" not in view
    assert len(view["text"]) == MAX_TEXT
    assert view["note"] == f"showing the first {MAX_TEXT:,} characters of the formatted body"
    assert view["checked"] == f"syntax checked over all {len(data):,} bytes"
    assert view["text"].startswith('[\n  {\n    "name": "Jürgen",\n    "tags": [\n      "a",')


def test_an_error_past_the_display_cut_is_located_with_the_text_around_it() -> None:
    broken = big_json(868 * 1024)[:-1] + b",\n]"  # a trailing comma at the very end
    text = broken.decode()
    view = render_best(Body(broken, "application/json"))
    error = view["error"]
    assert (error["message"], error["line"]) == ("Expecting value", 2)
    assert view["start"] + error["offset"] == len(text) - 1
    assert view["text"][error["offset"]] == "]"
    assert len(view["text"]) <= MAX_TEXT
    assert view["start"] >= len(text) - MAX_TEXT
    assert view["first_line"] == 1 + text.count("\n", 0, view["start"])
    assert view["note"] == f"showing characters {view['start']:,} to {len(text):,} of {len(text):,}, around the error"


def test_the_error_spot_of_a_long_body_is_the_character_json_names() -> None:
    text = '{"a": [' + ", ".join(["1"] * 300_000) + ", ]}"
    view = render_best(Body(text.encode(), "application/json"))
    error = view["error"]
    assert (error["line"], error["message"]) == (1, "Expecting value")
    assert view["text"][error["offset"]] == "]"
    assert error["column"] == text.index(", ]") + 3


def test_a_cut_body_that_fails_only_at_the_cut_is_not_a_syntax_error() -> None:
    data = big_json(700 * 1024)[: 600 * 1024 + 7]
    view = render_best(Body(data, "application/json", complete=False))
    assert "error" not in view
    assert "the body was cut at" in view["note"] and "no error before it" in view["note"]


def test_a_cut_body_with_an_error_before_the_cut_still_reports_it() -> None:
    data = b'{"a": 1,, "b": "' + b"x" * 1000
    view = render_best(Body(data, "application/json", complete=False))
    assert view["error"]["column"] == 9


def test_the_same_error_at_the_end_of_a_whole_body_is_reported() -> None:
    view = render_best(Body(b'{"a": "unterminated', "application/json"))
    assert view["error"]["message"].startswith("Unterminated string")


def test_json_is_drawn_from_its_own_tokens_numbers_and_repeated_keys_as_sent() -> None:
    view = render_best(Body(b'{"n":1.10,"n":2e5,"big":12345678901234567890,"e":{},"l":[]}', "application/json"))
    assert view["text"] == '{\n  "n": 1.10,\n  "n": 2e5,\n  "big": 12345678901234567890,\n  "e": {},\n  "l": []\n}'


def test_unicode_escapes_are_drawn_unescaped_other_escapes_kept() -> None:
    view = render_best(Body(b'{"name":"J\\u00fcrgen","q":"say \\"hi\\"\\n"}', "application/json"))
    assert view["text"] == '{\n  "name": "Jürgen",\n  "q": "say \\"hi\\"\\n"\n}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None)
@given(json_values)
def test_the_drawing_is_what_json_dumps_indent_2_gives(value: object) -> None:
    sent = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert syntax_views.pretty_json(sent) == (json.dumps(value, indent=2, ensure_ascii=False), False)


# --- XML, HTML ----------------------------------------------------------------------------------
def big_xml(size: int) -> bytes:
    row = "<row id='1'><name>Jürgen</name></row>".encode()
    return b"<rows>" + row * (size // len(row)) + b"</rows>"


def test_valid_xml_longer_than_the_drawing_is_checked_whole() -> None:
    data = big_xml(700 * 1024)
    view = render_best(Body(data, "application/xml"))
    assert "error" not in view
    assert len(view["text"]) == MAX_TEXT
    assert view["checked"] == f"syntax checked over all {len(data):,} bytes"


def test_xml_over_the_pretty_print_limit_is_drawn_as_sent() -> None:
    data = big_xml(syntax_views.XML_PRETTY_LIMIT + 1000)
    view = render_best(Body(data, "text/xml"))
    assert "error" not in view
    assert view["text"].startswith("<rows><row id='1'>")
    assert "shown as sent, not re-indented" in view["note"]


def test_an_xml_error_past_the_drawing_is_located() -> None:
    data = big_xml(700 * 1024)[: -len(b"</rows>")] + b"</rowz>"
    view = render_best(Body(data, "application/xml"))
    assert view["error"]["message"] == "mismatched tag"
    assert view["text"][view["error"]["offset"] :] == "rowz>"  # expat points at the wrong name


def test_html_gets_its_own_view_by_type_or_by_its_first_bytes() -> None:
    page = b"<!DOCTYPE html>\n<html><body><p>hi</p></body></html>"
    assert render_best(Body(page, "text/html; charset=utf-8")) == {"view": "html", "text": page.decode(), "note": ""}
    assert render_best(Body(page, ""))["view"] == "html"
    assert render_best(Body(b"<p>a fragment</p>", "text/plain"))["view"] == "text"


# --- multipart ----------------------------------------------------------------------------------
UPLOAD = (
    b"preamble\r\n"
    b'--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n\x00\x01--XyZ not a delimiter\x02\r\n"
    b"--XyZ--\r\nepilogue"
)


def test_multipart_parts_are_spans_of_the_body() -> None:
    parts = multipart.parse_parts(UPLOAD, 'multipart/form-data; boundary="XyZ"')
    assert [(p.name, p.filename, p.content_type, p.complete) for p in parts] == [
        ("title", None, "", True),
        ("file", "a.bin", "application/octet-stream", True),
    ]
    assert UPLOAD[parts[0].start : parts[0].end] == b"hello"
    assert UPLOAD[parts[1].start : parts[1].end] == b"\x00\x01--XyZ not a delimiter\x02"


def test_a_part_cut_by_the_capture_limit_says_so_with_the_bytes_it_has() -> None:
    cut = UPLOAD[: UPLOAD.index(b"not a delimiter")]
    listed = multipart_parts(cut, "multipart/form-data; boundary=XyZ")
    assert [(p["index"], p["name"], p["complete"]) for p in listed] == [(0, "title", True), (1, "file", False)]
    assert listed[1]["size"] == len(b"\x00\x01--XyZ ")
    assert listed[0]["value"] == "hello" and listed[1]["value"] is None


def test_a_body_without_its_boundary_has_no_parts() -> None:
    assert multipart.parse_parts(UPLOAD, "multipart/form-data; boundary=Other") == []
    assert multipart.parse_parts(UPLOAD, "multipart/form-data") == []
