"""Header bytes as text: UTF-8 as sent, a visible fallback for other bytes, RFC 8187 parameters."""

from __future__ import annotations

import pytest

from agentapi.captures.header_text import (
    api_fields,
    api_text,
    decode_extended,
    display_fields,
    display_text,
    disposition_filename,
    parameter,
    split_parameters,
)


def test_utf8_values_read_as_sent() -> None:
    assert api_text("André".encode()) == "André"
    assert display_text("André".encode()) == "André"
    assert display_text('attachment; filename="résumé.pdf"'.encode()) == 'attachment; filename="résumé.pdf"'


def test_ascii_is_unchanged() -> None:
    assert api_text(b"text/html; charset=utf-8") == display_text(b"text/html; charset=utf-8")


def test_the_api_replaces_each_invalid_byte_with_u_fffd_as_go_does() -> None:
    assert api_text(b"Andr\xe9") == "Andr\ufffd"
    # A cut 3-byte sequence is two invalid bytes for Go (Python's "replace" would make it one).
    assert api_text(b"x\xe2\x82y") == "x\ufffd\ufffdy"
    assert api_text(b"\xff\xfe") == "\ufffd\ufffd"
    assert api_text(b"\xed\xa0\x80") == "\ufffd\ufffd\ufffd"  # an encoded surrogate is not UTF-8


def test_the_inspector_shows_invalid_bytes_as_hex_escapes() -> None:
    assert display_text(b"Andr\xe9") == "Andr\\xe9"
    assert display_text("é".encode() + b"\x80") == "é\\x80"


def test_fields_keep_their_order_and_repeats() -> None:
    fields = [(b"X-User", "André".encode()), (b"X-User", b"Andr\xe9"), (b"A", b"1")]
    assert api_fields(fields) == [("X-User", "André"), ("X-User", "Andr\ufffd"), ("A", "1")]
    assert display_fields(fields) == [("X-User", "André"), ("X-User", "Andr\\xe9"), ("A", "1")]


def test_parameters_are_split_unquoted_and_unescaped() -> None:
    main, parameters = split_parameters('form-data; name="a \\"b\\""; filename=plain.txt;  flag ; x="1;2"')
    assert main == "form-data"
    assert parameters == [("name", 'a "b"'), ("filename", "plain.txt"), ("flag", ""), ("x", "1;2")]


def test_rfc_8187_extended_values_are_decoded() -> None:
    assert decode_extended("UTF-8''r%C3%A9sum%C3%A9.pdf") == "résumé.pdf"
    assert decode_extended("utf-8'en'%E2%82%AC%20rates") == "€ rates"
    assert decode_extended("iso-8859-1'de'%E9t%E9") == "été"
    assert decode_extended("UTF-8''Andr%E9") == "Andr\\xe9"  # not UTF-8: the visible fallback
    assert decode_extended("no-quotes-here") is None
    assert decode_extended("x-unknown''caf%C3%A9") == "café"  # an unknown charset is read as UTF-8


@pytest.mark.parametrize(
    ("value", "filename"),
    [
        ('attachment; filename="résumé.pdf"', "résumé.pdf"),
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        # RFC 6266 4.3: filename* wins, whatever the order.
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf; filename=\"resume.pdf\"", "résumé.pdf"),
        ("attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        # A filename* that does not decode leaves filename.
        ('attachment; filename*=garbage; filename="resume.pdf"', "resume.pdf"),
        ("inline; FILENAME=a.txt", "a.txt"),
        ("inline", None),
    ],
)
def test_content_disposition_filename(value: str, filename: str | None) -> None:
    assert disposition_filename(value) == filename


def test_extended_parameters_in_split_keep_their_star() -> None:
    _, parameters = split_parameters("attachment; filename*=UTF-8''%C3%A9.txt")
    assert parameters == [("filename*", "é.txt")]
    assert parameter("text/plain; Charset=UTF-8", "charset") == "UTF-8"
