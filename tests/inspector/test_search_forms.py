"""The spellings a searched text may have on the wire (agentapi.captures.text_search), without a database."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from agentapi.captures.message_body import parse_message
from agentapi.captures.text_search import (
    body_contains,
    body_forms,
    decoded_target,
    target_contains,
    target_forms,
)

# Text a user may type: any character but `%` and `+`, which a target may hold literally and which
# decoding reads as an escape and a space.
typed = st.text(st.characters(exclude_characters="%+", exclude_categories=["Cs"]), min_size=1, max_size=12)


def browser(text: str) -> str:
    return quote(text, safe="!$&'()*,-./:;=?@_~[]")


def raw_utf8(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


ENCODERS = (browser, quote, quote_plus, raw_utf8)


@settings(max_examples=60, deadline=None)
@given(typed, st.sampled_from(ENCODERS))
def test_every_common_encoding_of_a_target_holds_a_form_of_the_text(text: str, encode) -> None:
    target = "/p?x=" + encode("<" + text + ">")
    assert any(form.lower() in target.lower() for form in target_forms(text))
    assert target_contains(target, text)


def test_the_decoded_target_is_what_the_summary_shows() -> None:
    assert decoded_target("/json?name=J%C3%BCrgen&q=a+b") == "/json?name=Jürgen&q=a b"
    assert decoded_target("/caf\u00c3\u00a9") == "/café"
    assert decoded_target("/bad%FF") == "/bad\ufffd"


@settings(max_examples=60, deadline=None)
@given(typed)
def test_a_json_body_written_by_python_javascript_or_php_holds_a_body_form(text: str) -> None:
    for sent in (
        json.dumps({"k": text}),
        json.dumps({"k": text}, ensure_ascii=False),
        json.dumps({"k": text}).replace("/", "\\/"),
    ):
        data = sent.encode("utf-8")
        assert any(form in data for form in body_forms(text))
        message = parse_message(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + data, response=True, decoded_limit=1 << 20
        )
        assert body_contains(message, text)


def test_an_escape_outside_json_is_not_read_as_one() -> None:
    message = parse_message(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nJ\\u00fcrgen", response=True)
    assert not body_contains(message, "Jürgen")
