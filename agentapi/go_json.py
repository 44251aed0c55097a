"""JSON as the Go agent writes it, because clients and diffs compare against the real thing.

Go's encoding/json prints floats in the shortest form that round-trips, without a trailing `.0`
(`0`, `8287268034`), in exponent form below 1e-6 or from 1e21 (`1.5e-7`, no zero-padded exponent).
Python's json writes `0.0` and `1.5e-07`, hence this small encoder. Keys keep insertion order.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from rest_framework.renderers import BaseRenderer

_encode_basestring = json.encoder.encode_basestring
# Go escapes these even in API output (json.Marshal's HTML-safe default).
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)
# A lone surrogate cannot be written as UTF-8; Go writes U+FFFD for invalid UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encode_string(value: str) -> str:
    return _encode_basestring(value).translate(_GO_ESCAPE_TABLE)


def go_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{value} is not representable in JSON")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa, _, exponent = repr(value).partition("e")
        if not exponent:  # repr chose positional: rebuild in exponent form
            mantissa, _, exponent = f"{value:e}".partition("e")
            mantissa = repr(float(mantissa))
        mantissa = mantissa.removesuffix(".0")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def dumps(data: Any) -> str:
    parts: list[str] = []
    _write(data, parts.append)
    return "".join(parts)


def _write(value: Any, out: Any) -> None:
    if isinstance(value, str):
        out(_encode_string(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, int):
        out(str(value))
    elif isinstance(value, float):
        out(go_float(value))
    elif isinstance(value, dict):
        out("{")
        first = True
        for key, item in value.items():
            if not first:
                out(",")
            first = False
            out(_encode_string(str(key)))
            out(":")
            _write(item, out)
        out("}")
    elif isinstance(value, (list, tuple)):
        out("[")
        for index, item in enumerate(value):
            if index:
                out(",")
            _write(item, out)
        out("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class GoJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        # Go's json.Encoder ends every document with a newline.
        return encode_document(data)


def encode_document(data: Any) -> bytes:
    """The whole response body: the JSON, a newline, as UTF-8."""
    text = dumps(data) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")
