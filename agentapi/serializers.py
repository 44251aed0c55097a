"""Wire shapes of the agent API: tunnels, endpoints and captured requests, keys in ngrok's order.

Tunnel metrics come in the serializer's context (`{"metrics": {name: snapshot}}`), taken by the view
from the runtime on the event loop; a tunnel without one (another agent runs it, no engine in this
process) shows zeros.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any
from urllib.parse import quote

from rest_framework import serializers

from .captures.header_text import api_fields
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


def header_map(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Go's http.Header of text fields (see `api_fields` for the text: UTF-8, U+FFFD per bad byte)."""
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        key = canonical_header(name)
        if key == "Host":
            continue  # Go moves Host out of the header map
        headers.setdefault(key, []).append(value)
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


class CaptureSerializer(serializers.BaseSerializer):
    def to_representation(self, capture: Capture) -> dict[str, Any]:
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
                "headers": header_map(api_fields(head.raw_headers)),
                "raw": base64.b64encode(response_raw).decode("ascii"),
                # Beyond ngrok's shape: the true size, whether `raw` holds all of it, and whether
                # the message crossed whole (see the capture's `incomplete_reason` when not).
                "size": capture.response_size or 0,
                "truncated": capture.response_truncated,
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
                "headers": header_map(api_fields(request.raw_headers)),
                "uri": capture.uri,
                "raw": base64.b64encode(request_raw).decode("ascii"),
                "size": capture.request_size,
                "truncated": capture.request_truncated,
                "complete": capture.request_complete,
            },
            "response": response,
        }
