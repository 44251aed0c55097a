"""go_json writes numbers and strings as Go's encoding/json does."""

from __future__ import annotations

import json
import math

import pytest

from agentapi.go_json import GoJSONRenderer, dumps, encode_document, go_float


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-3.0, "-3"),
        (8287268034.0, "8287268034"),
        (1023083791.5, "1023083791.5"),
        (0.4, "0.4"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1 / 3, "0.3333333333333333"),
        (123456.789, "123456.789"),
        (0.000123, "0.000123"),
        (1e-6, "0.000001"),
        (9.99e-7, "9.99e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-7, "1e-7"),
        (-2.5e-9, "-2.5e-9"),
        (1e-10, "1e-10"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (5e-324, "5e-324"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e21, "1e+21"),
        (1.2345e22, "1.2345e+22"),
        (-1e21, "-1e+21"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_go_float_writes_floats_like_go(value: float, text: str) -> None:
    assert go_float(value) == text
    assert float(text) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_go_float_refuses_what_json_cannot_hold(value: float) -> None:
    with pytest.raises(ValueError, match="not representable"):
        go_float(value)


def test_dumps_writes_compact_json_in_insertion_order() -> None:
    data = {"z": 1, "a": [0.0, 2.5, True, False, None, "x"], "m": {"b": 1, "a": 2}, "t": (1, 2)}
    assert dumps(data) == '{"z":1,"a":[0,2.5,true,false,null,"x"],"m":{"b":1,"a":2},"t":[1,2]}'


def test_dumps_writes_metrics_without_python_floats() -> None:
    metrics = {"count": 3, "rate1": 0.0, "rate5": 1.5e-7, "p50": 8287268034.0}
    assert dumps(metrics) == '{"count":3,"rate1":0,"rate5":1.5e-7,"p50":8287268034}'


def test_dumps_escapes_html_characters_and_line_separators_like_go() -> None:
    assert dumps("<a href='x'>&</a>") == "\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\""
    assert dumps("a\u2028b\u2029c") == '"a\\u2028b\\u2029c"'


def test_dumps_keeps_non_ascii_as_is_and_escapes_controls() -> None:
    assert dumps('café "q" \\ \n\t\x01') == '"café \\"q\\" \\\\ \\n\\t\\u0001"'


def test_dumps_writes_big_integers_exactly() -> None:
    assert dumps(2**63 + 1) == "9223372036854775809"


def test_dumps_escapes_keys_too() -> None:
    assert dumps({"<k>": 1}) == '{"\\u003ck\\u003e":1}'


def test_dumps_round_trips_through_json() -> None:
    data = {"name": "tunnel (1)", "values": [1, 0.5, -0.25, None], "nested": {"ok": True}}
    assert json.loads(dumps(data)) == data


def test_dumps_refuses_what_it_does_not_know() -> None:
    with pytest.raises(TypeError):
        dumps({"x": {1, 2}})


def test_a_document_ends_with_a_newline_like_gos_encoder() -> None:
    assert encode_document({"a": 0.0}) == b'{"a":0}\n'


def test_a_lone_surrogate_is_written_as_the_replacement_character() -> None:
    assert encode_document({"name": "a\ud800b"}) == '{"name":"a\ufffdb"}\n'.encode()


def test_the_renderer_writes_nothing_for_no_content() -> None:
    assert GoJSONRenderer().render(None) == b""
    assert GoJSONRenderer().render({"a": 1}) == b'{"a":1}\n'
    assert GoJSONRenderer.media_type == "application/json"
