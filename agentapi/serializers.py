"""Wire shapes of the agent API: tunnels, endpoints and captured requests, keys in ngrok's order.

Tunnel metrics come in the serializer's context (`{"metrics": {name: snapshot}}`), taken by the view
from the runtime on the event loop; a tunnel without one (another agent runs it, no engine in this
process) shows zeros.

Captures are listed 50 or 100 at a time, each with both messages: they skip DRF's serializer and
renderer. `capture_wire` builds one capture's dict and `capture_list_document`/`capture_document`
write the response body themselves, byte for byte what GoJSONRenderer writes (tests/unit/
test_capture_wire.py holds them to the serializer they replaced), ~5x faster for a list (issue 11).
"""

from __future__ import annotations

import datetime as dt
import json
from base64 import b64encode
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from rest_framework import serializers

from . import go_json
from .captures.header_text import api_text
from .engine.http1 import parse_stored_head, reason_phrase
from .models import Capture, Tunnel

ZERO_METRICS: dict[str, dict[str, Any]] = {
    "conns": {"count": 0, "gauge": 0, "rate1": 0, "rate5": 0, "rate15": 0, "p50": 0, "p90": 0, "p95": 0, "p99": 0},
    "http": {"count": 0, "rate1": 0, "rate5": 0, "rate15": 0, "p50": 0, "p90": 0, "p95": 0, "p99": 0},
}


def path_escape(name: str) -> str:
    """Go's url.PathEscape: keeps letters, digits, `-._~` and `$&+:=@`; escapes the rest as UTF-8.

    `/ ; , ?` are escaped (they mean something inside a path segment), and so are `!*'()`, which
    Python's quote() would keep.
    """
    return quote(name, safe="$&+:=@")


def tunnel_metrics(context: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    metrics: dict[str, dict[str, dict[str, Any]]] = context.get("metrics") or {}
    return metrics.get(name, ZERO_METRICS)


class TunnelSerializer(serializers.BaseSerializer):
    def to_representation(self, tunnel: Tunnel) -> dict[str, Any]:
        return {
            "name": tunnel.name,
            "ID": tunnel.tunnel_id,
            "uri": "/api/tunnels/" + path_escape(tunnel.name),
            "public_url": tunnel.public_url,
            "proto": tunnel.proto,
            "config": {"addr": tunnel.addr, "inspect": tunnel.inspect},
            "metrics": tunnel_metrics(self.context, tunnel.name),
        }


def shown_policy(definition: dict[str, Any]) -> str:
    """An endpoint's `traffic_policy` as ngrok's API shows it: the text it was given ("" for none).

    A config file may give the policy as a YAML mapping (or under its old name `policy`); that one
    is shown as JSON text, which YAML reads too.
    """
    policy = definition.get("traffic_policy") or definition.get("policy") or ""
    return policy if isinstance(policy, str) else json.dumps(policy)


class EndpointSerializer(serializers.BaseSerializer):
    """The 3.30+ view of the same tunnels: `url` instead of `public_url`, an upstream block."""

    def to_representation(self, tunnel: Tunnel) -> dict[str, Any]:
        definition = tunnel.definition
        upstream = definition.get("upstream") if isinstance(definition.get("upstream"), dict) else {}
        body: dict[str, Any] = {
            "name": tunnel.name,
            "uri": "/api/endpoints/" + path_escape(tunnel.name),
            "url": tunnel.public_url,
            "upstream": {"url": upstream.get("url") or tunnel.addr, "protocol": upstream.get("protocol") or "http1"},
            "inspect": tunnel.inspect,
            "traffic_policy": shown_policy(definition),
            "pooling_enabled": bool(definition.get("pooling_enabled", False)),
        }
        if self.context.get("detail"):
            body["metrics"] = tunnel_metrics(self.context, tunnel.name)
        return body


# Bytes Go's textproto accepts in a header name (RFC 7230 tchar).
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def canonical_header(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: upper-case the first letter and each one after `-`.

    Any token character is allowed (`x_trace_id` -> `X_trace_id`); a name with any other character
    (a space, non-ASCII) is returned unchanged, as Go does.
    """
    if not name or not _TOKEN_CHARS.issuperset(name):
        return name
    out = []
    upper = True
    for char in name:
        out.append(char.upper() if upper else char.lower())
        upper = char == "-"
    return "".join(out)


# Header name bytes -> their key in the API (text, canonical). Names repeat across captures, so a
# list of 50 canonicalises a handful of names instead of hundreds. Bounded: short names only, and
# no more entries once full (a service inventing names cannot grow it past ~100 KiB).
_KEYS: dict[bytes, str] = {}
_KEYS_MAX = 1024
_KEY_MAX_BYTES = 64


def header_key(name: bytes) -> str:
    """A header field name's key in the API: its text (see `api_text`), Go-canonical."""
    key = _KEYS.get(name)
    if key is None:
        key = canonical_header(api_text(name))
        if len(name) <= _KEY_MAX_BYTES and len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


def header_map(fields: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Go's http.Header of header field bytes: text per `api_text` (UTF-8, U+FFFD per bad byte),
    canonical names, values in wire order; Host left out, as Go moves it out of the map."""
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        key = _KEYS.get(name) or header_key(name)
        if key == "Host":
            continue
        values = headers.get(key)
        if values is None:
            headers[key] = [api_text(value)]
        else:
            values.append(api_text(value))
    return headers


def go_time(moment: dt.datetime) -> str:
    text = moment.astimezone().replace(microsecond=0).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


TRACE_KEYS = ("phase", "rule", "action", "outcome", "terminal")


def policy_trace(capture: Capture) -> list[dict[str, Any]]:
    """The capture's Traffic Policy trace in the API: [{phase, rule, action, outcome, terminal}]
    in the order the actions ran, `terminal` on the one that answered instead of the service; []
    when the endpoint has no policy (and for rows stored before traces were kept)."""
    return [{key: step[key] for key in TRACE_KEYS} for step in capture.policy_trace]


def capture_wire(capture: Capture) -> dict[str, Any]:
    """One capture in the API's shape (ngrok's keys in ngrok's order, then ours): the request and
    response heads parsed from the stored bytes, headers as Go's http.Header, `raw` in base64;
    `response` null until the row has a status and response bytes."""
    request_raw = bytes(capture.request_raw)
    request = parse_stored_head(request_raw, response=False)
    response: dict[str, Any] | None = None
    if capture.status_code is not None and capture.response_raw is not None:
        response_raw = bytes(capture.response_raw)
        head = parse_stored_head(response_raw, response=True)
        status = head.status or capture.status_code
        response = {
            "status": f"{status} {head.reason or reason_phrase(status)}".rstrip(),
            "status_code": status,
            "proto": f"HTTP/{head.version}",
            "headers": header_map(head.raw_headers),
            "raw": b64encode(response_raw).decode("ascii"),
            # Beyond ngrok's shape: the true size, whether `raw` holds all of it, and whether
            # the message crossed whole (see the capture's `incomplete_reason` when not).
            "size": capture.response_size or 0,
            "truncated": len(response_raw) < (capture.response_size or 0),
            "complete": capture.response_complete,
        }
    return {
        "uri": "/api/requests/http/" + capture.id,
        "id": capture.id,
        "tunnel_name": capture.tunnel_name,
        "remote_addr": capture.remote_addr,
        "start": go_time(capture.start),
        "duration": capture.duration_ns,
        # Ours, not ngrok's: why the request or response did not cross whole ("" when both did).
        "incomplete_reason": capture.incomplete_reason,
        # Ours: what the endpoint's Traffic Policy did to this exchange, step by step.
        "traffic_policy": policy_trace(capture),
        "request": {
            "method": capture.method,
            "proto": f"HTTP/{request.version}",
            "headers": header_map(request.raw_headers),
            "uri": capture.uri,
            "raw": b64encode(request_raw).decode("ascii"),
            "size": capture.request_size,
            "truncated": len(request_raw) < capture.request_size,
            "complete": capture.request_complete,
        },
        "response": response,
    }


def capture_document(capture: Capture) -> bytes:
    """The body of GET /api/requests/http/<id>: one capture as go_json writes it."""
    return _go_document(capture_wire(capture), numbers=_trace_numbers(capture))


def capture_list_document(captures: Iterable[Capture]) -> bytes:
    """The body of GET /api/requests/http: {"uri", "requests": [capture, ...]} in the order given,
    as go_json writes it."""
    requests = []
    numbers = False
    for capture in captures:
        requests.append(capture_wire(capture))
        numbers = numbers or _trace_numbers(capture)
    return _go_document({"uri": "/api/requests/http", "requests": requests}, numbers=numbers)


# Go's json.Marshal escapes these in every string (its HTML-safe default); as go_json does.
_GO_STRING_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
# The C encoder of the standard library: the strings as go_json's encode_basestring writes them,
# compact separators, keys in insertion order. It writes floats unlike Go, so it only gets
# documents without floats (see `_trace_numbers`).
_encode_plain = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode


def _trace_numbers(capture: Capture) -> bool:
    """Whether the capture's stored trace holds anything but strings, booleans and nulls (the
    agent writes only those; a number there must be written by go_json's float rules)."""
    return any(type(value) not in _PLAIN for step in capture.policy_trace for value in step.values())


_PLAIN = frozenset({str, bool, type(None)})


def _go_document(data: dict[str, Any], *, numbers: bool) -> bytes:
    """`go_json.encode_document(data)`, byte for byte, ten times faster when `data` holds no float.

    Without floats, go_json's output is the C encoder's with Go's HTML escapes applied to the
    strings; those five characters cannot appear outside a string in JSON, so they are replaced in
    the whole text at once. Text that is not UTF-8 (a lone surrogate) takes go_json's path."""
    if numbers:
        return go_json.encode_document(data)
    text = _encode_plain(data)
    for char, escape in _GO_STRING_ESCAPES:
        if char in text:
            text = text.replace(char, escape)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return go_json.encode_document(data)
