"""The agent API's OpenAPI 3 description: the wire shapes as they are, for drf-spectacular.

The views build their bodies by hand in ngrok's key order (see serializers.py), so the shapes are
written here as JSON Schema components, named once and referred to by the views' `extend_schema`
decorations. A shape here must match what the API sends: tests/api/test_openapi_schema.py runs
schemathesis over this description against a running agent and fails on any response that does
not fit it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from .definitions import CLIENT_OPTION_KEYS
from .engine.tunnel_spec import MAX_RESPONSE_TIMEOUT, MAX_STRING


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_STRING: dict[str, Any] = {"type": "string"}
_NUMBER: dict[str, Any] = {"type": "number"}
_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Canonical header names (Go's textproto) to their values; Host is not in the map.",
    "additionalProperties": {"type": "array", "items": _STRING},
}


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A closed object whose keys come in this order; all required unless named in `optional`."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [key for key in properties if key not in optional]
    if required:  # OpenAPI 3.0 wants a non-empty list, or none
        schema["required"] = required
    return {**schema, "additionalProperties": False, **extra}


# Beyond ngrok's capture shape (ours): the true size, whether `raw` holds all of it, and whether
# the message crossed whole.
_MESSAGE_EXTRAS: dict[str, Any] = {
    "size": {"type": "integer", "description": "Ours: the message's true size in bytes."},
    "truncated": {"type": "boolean", "description": "Ours: raw holds only the first AGENT_CAPTURE_LIMIT bytes."},
    "complete": {"type": "boolean", "description": "Ours: the message crossed whole."},
}

_CONNS = ("count", "gauge", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99")
_HTTP = ("count", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99")

_CLIENT_OPTION = {"description": "An npm `ngrok` client or cloud option: accepted and ignored."}

_TUNNEL_KEYS: dict[str, Any] = {
    "name": {
        "type": "string",
        "maxLength": 200,
        "description": "Missing, null or empty: a generated name.",
        "nullable": True,
    },
    "proto": {"type": "string", "enum": ["http", "tcp", "tls"], "default": "http"},
    "addr": {
        "description": "The local service: a port, host:port ([::1]:8080 for IPv6) or a URL; for http also "
        "file:///abs/dir, ngrok's built-in file server over that directory.",
        "oneOf": [{"type": "string", "maxLength": MAX_STRING}, {"type": "integer", "minimum": 1, "maximum": 65535}],
    },
    "inspect": {"type": "boolean", "nullable": True, "description": "Capture requests (http only; default true)."},
    "metadata": {"type": "string", "maxLength": MAX_STRING, "nullable": True},
    "description": {"type": "string", "maxLength": MAX_STRING, "nullable": True},
    "basic_auth": {
        "description": '"user:password" entries (http).',
        "oneOf": [{"type": "string"}, {"type": "array", "items": _STRING}],
        "nullable": True,
    },
    "auth": {"description": "2.x spelling of basic_auth.", "type": "string", "nullable": True},
    "bind_tls": {
        "description": '2.x: true (https), false (http) or "both".',
        "oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false", "both"]}],
        "nullable": True,
    },
    "schemes": {"type": "array", "items": {"type": "string", "enum": ["http", "https"]}, "minItems": 1},
    "host_header": {"type": "string", "description": "rewrite, preserve or a literal Host.", "nullable": True},
    "hostname": {"type": "string", "description": "http: the listen address (ours).", "nullable": True},
    "subdomain": {"type": "string", "description": "Accepted, no local meaning.", "nullable": True},
    "domain": {"type": "string", "description": "http: the listen address (ours).", "nullable": True},
    "url": {"type": "string", "description": "[scheme://]host:port to listen on.", "nullable": True},
    "remote_addr": {"type": "string", "description": "tcp/tls: host:port to listen on.", "nullable": True},
    "ip_restriction": _object(
        {"allow_cidrs": {"type": "array", "items": _STRING}, "deny_cidrs": {"type": "array", "items": _STRING}},
        optional=("allow_cidrs", "deny_cidrs"),
    ),
    "request_header": _object(
        {"add": {"type": "array", "items": _STRING}, "remove": {"type": "array", "items": _STRING}},
        optional=("add", "remove"),
    ),
    "response_header": _object(
        {"add": {"type": "array", "items": _STRING}, "remove": {"type": "array", "items": _STRING}},
        optional=("add", "remove"),
    ),
    "compression": {"type": "boolean", "nullable": True, "description": "Deprecated: compress-response."},
    "circuit_breaker": {
        "type": "number",
        "nullable": True,
        "description": "Deprecated: circuit-breaker at this ratio of 5xx answers (0-1; above 1, a percentage).",
    },
    "verify_webhook": _object({"provider": _STRING, "secret": _STRING}, optional=("secret",), nullable=True),
    "webhook_verification": _object({"provider": _STRING, "secret": _STRING}, optional=("secret",), nullable=True),
    "user_agent_filter": _object(
        {"allow": {"type": "array", "items": _STRING}, "deny": {"type": "array", "items": _STRING}},
        optional=("allow", "deny"),
        nullable=True,
    ),
    "traffic_policy": {
        "description": "A Traffic Policy: YAML or JSON text, or an object (tcp and tls: on_tcp_connect only).",
        "oneOf": [{"type": "string"}, {"type": "object"}],
        "nullable": True,
    },
    "policy": {
        "description": "The name of traffic_policy before agent 3.14.",
        "oneOf": [{"type": "string"}, {"type": "object"}],
        "nullable": True,
    },
    "pooling_enabled": {"type": "boolean", "nullable": True},
    "bindings": {"type": "array", "items": {"type": "string", "enum": ["public", "internal"]}, "maxItems": 1},
    "proxy_protocol": {
        "description": "Send HAProxy's PROXY header (version 1 or 2) with the client's address first on each "
        "upstream connection.",
        "oneOf": [{"type": "string", "enum": ["", "1", "2"]}, {"type": "integer", "enum": [1, 2]}],
        "nullable": True,
    },
    "proxy_proto": {"description": "2.x spelling of proxy_protocol.", "type": "string", "nullable": True},
    "upstream_tls_verify": {
        "description": "Verify an https upstream's certificate (default false, as ngrok).",
        "type": "boolean",
        "nullable": True,
    },
    "upstream_tls_verify_cas": {
        "description": "A PEM file of CAs to verify an https upstream against (turns verification on).",
        "type": "string",
        "nullable": True,
    },
    "response_timeout": {
        "description": "http: seconds the local service may take to start its answer (504 after), or a Go "
        'duration string ("90s", "5m"). Default: AGENT_UPSTREAM_TIMEOUT.',
        "oneOf": [
            {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_RESPONSE_TIMEOUT},
            {"type": "string", "example": "5m"},
        ],
        "nullable": True,
    },
    "crt": {"type": "string", "description": "tls: PEM certificate path (terminate at the agent).", "nullable": True},
    "key": {"type": "string", "description": "tls: PEM key path.", "nullable": True},
    "terminate_at": {"type": "string", "enum": ["agent", "upstream"], "nullable": True},
}


COMPONENTS: dict[str, Any] = {
    "Error": _object(
        {
            "error_code": {
                "type": "integer",
                "description": "102 invalid tunnel configuration, 103 failed to start tunnel, 100 anything else.",
            },
            "status_code": {"type": "integer", "description": "The HTTP status, repeated."},
            "msg": {"type": "string", "minLength": 1, "description": "A short fixed phrase."},
            "details": {
                "type": "object",
                "properties": {"err": _STRING},
                "required": ["err"],
                "additionalProperties": _STRING,
            },
        },
        description="ngrok's error body: exactly these four keys in this order, then a newline.",
    ),
    "ConnsMetrics": _object({key: _NUMBER for key in _CONNS}, description="Connections; p* in nanoseconds."),
    "HttpMetrics": _object({key: _NUMBER for key in _HTTP}, description="Requests; p* in nanoseconds."),
    "Metrics": _object({"conns": ref("ConnsMetrics"), "http": ref("HttpMetrics")}),
    "Tunnel": _object(
        {
            "name": _STRING,
            "ID": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "uri": {"type": "string", "description": "/api/tunnels/ + the name escaped like Go's url.PathEscape."},
            "public_url": {"type": "string", "description": "http://HOST:PORT, https://, tcp:// or tls://."},
            "proto": {"type": "string", "enum": ["http", "https", "tcp", "tls"]},
            "config": _object({"addr": _STRING, "inspect": {"type": "boolean"}}),
            "metrics": ref("Metrics"),
        }
    ),
    "TunnelList": _object({"tunnels": {"type": "array", "items": ref("Tunnel")}, "uri": _STRING}),
    "TunnelDefinition": {
        "type": "object",
        "description": "A tunnel definition as in the config file; unknown keys are refused.",
        "properties": {**_TUNNEL_KEYS, **{key: _CLIENT_OPTION for key in sorted(CLIENT_OPTION_KEYS)}},
        "required": ["addr"],
        "additionalProperties": False,
        "example": {"name": "web-8080", "proto": "http", "addr": "8080", "response_timeout": "5m"},
    },
    "Endpoint": _object(
        {
            "name": _STRING,
            "uri": _STRING,
            "url": {"type": "string", "description": "The public URL."},
            "upstream": _object({"url": _STRING, "protocol": _STRING}),
            "inspect": {"type": "boolean"},
            "traffic_policy": {"type": "string", "description": "The policy as it was given; empty for none."},
            "pooling_enabled": {"type": "boolean"},
            "metrics": ref("Metrics"),
        },
        optional=("metrics",),
        description="The 3.30+ view of a tunnel; `metrics` in the detail only.",
    ),
    "EndpointList": _object({"endpoints": {"type": "array", "items": ref("Endpoint")}, "uri": _STRING}),
    "EndpointDefinition": {
        "type": "object",
        "description": "An endpoint (pyngrok 9's shape). Tunnel keys such as basic_auth may come along.",
        "properties": {
            "name": {"type": "string", "maxLength": 200, "nullable": True},
            "url": {"type": "string", "description": "http://, https://, tcp:// or tls:// [host:port]"},
            "upstream": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "minLength": 1},
                    "protocol": {"type": "string", "enum": ["", "http1"]},
                    "proxy_protocol": _STRING,
                },
                "required": ["url"],
                "additionalProperties": False,
            },
            "inspect": {"type": "boolean", "nullable": True},
            "traffic_policy": {
                "type": "string",
                "description": "A Traffic Policy as YAML or JSON text, echoed back as given. A bad one is a 400 "
                "naming the rule, action and field (ERR_NGROK_9026).",
            },
            "pooling_enabled": {"type": "boolean"},
            "metadata": {"type": "string", "maxLength": MAX_STRING},
            "description": {"type": "string", "maxLength": MAX_STRING},
            "bindings": {
                "type": "array",
                "items": {"type": "string", "enum": ["public", "internal"]},
                "maxItems": 1,
                "description": "internal (or a .internal url): no listener; reached through forward-internal.",
            },
            "agent_tls_termination": {
                "type": "object",
                "description": "tls:// endpoints: terminate TLS at the agent with this certificate and key (each a "
                "file path or PEM text). Client certificates (mutual_tls_certificate_authorities) are refused.",
                "properties": {
                    "server_certificate": {"type": "string", "minLength": 1},
                    "server_private_key": {"type": "string", "minLength": 1},
                    "mutual_tls_certificate_authorities": {"type": "array", "items": _STRING, "maxItems": 0},
                },
                "required": ["server_certificate", "server_private_key"],
                "additionalProperties": False,
            },
        },
        "required": ["upstream"],
        "example": {"name": "web-8081", "upstream": {"url": "http://localhost:8081"}},
    },
    "CapturedRequest": _object(
        {
            "method": _STRING,
            "proto": _STRING,
            "headers": _HEADERS,
            "uri": _STRING,
            "raw": {"type": "string", "description": "base64 of the whole message as far as captured."},
            **_MESSAGE_EXTRAS,
        },
        optional=tuple(_MESSAGE_EXTRAS),
    ),
    "CapturedResponse": _object(
        {
            "status": {"type": "string", "example": "200 OK"},
            "status_code": {"type": "integer"},
            "proto": _STRING,
            "headers": _HEADERS,
            "raw": {"type": "string", "description": "base64 of the whole message as far as captured."},
            **_MESSAGE_EXTRAS,
        },
        optional=tuple(_MESSAGE_EXTRAS),
        nullable=True,
        description="null while the local service has not answered.",
    ),
    "Capture": _object(
        {
            "uri": _STRING,
            "id": {"type": "string", "description": "airt_ + a KSUID: sorts by time."},
            "tunnel_name": _STRING,
            "remote_addr": _STRING,
            "start": {"type": "string", "description": "RFC 3339 with the local offset."},
            "duration": {"type": "integer", "description": "nanoseconds"},
            "incomplete_reason": {
                "type": "string",
                "description": "Ours: why the request or response did not cross whole (empty when both did).",
            },
            "traffic_policy": {
                "type": "array",
                "items": ref("PolicyStep"),
                "description": "Ours: what the endpoint's Traffic Policy did, action by action ([] for no policy).",
            },
            "request": ref("CapturedRequest"),
            "response": ref("CapturedResponse"),
        },
        optional=("incomplete_reason", "traffic_policy"),
    ),
    "PolicyStep": _object(
        {
            "phase": {"type": "string", "enum": ["on_tcp_connect", "on_http_request", "on_http_response"]},
            "rule": _STRING,
            "action": _STRING,
            "outcome": {"type": "string", "example": "refused 401"},
            "terminal": {"type": "boolean", "description": "The action answered instead of the service."},
        },
        description="One action a Traffic Policy ran on a captured exchange.",
    ),
    "WebSocketFrame": _object(
        {
            "seq": {"type": "integer", "description": "The connection's frames in order, both directions."},
            "direction": {"type": "string", "enum": ["client", "server"], "description": "client: to the service."},
            "time": {"type": "number", "description": "epoch seconds when its header was read"},
            "opcode": {"type": "integer", "minimum": 0, "maximum": 15},
            "opcode_name": {"type": "string", "example": "text"},
            "fin": {"type": "boolean"},
            "compressed": {"type": "boolean", "description": "RSV1 (permessage-deflate): payload as it crossed."},
            "size": {"type": "integer", "description": "The payload's true length in bytes."},
            "payload": {"type": "string", "description": "base64 of the payload's first bytes, unmasked."},
            "truncated": {"type": "boolean", "description": "payload holds fewer bytes than size."},
            "close_code": {"type": "integer", "nullable": True, "description": "A close frame's status code."},
            "close_reason": _STRING,
        },
        description="Ours: one WebSocket frame of a captured Upgrade (RFC 6455 5.2).",
    ),
    "WebSocketFrames": _object(
        {
            "uri": _STRING,
            "id": _STRING,
            "totals": _object(
                {
                    "client_frames": {"type": "integer"},
                    "server_frames": {"type": "integer"},
                    "client_bytes": {"type": "integer"},
                    "server_bytes": {"type": "integer"},
                    "recorded": {"type": "integer", "description": "Frames recorded (the rest only counted)."},
                    "stopped": {"type": "string", "description": "Why recording stopped early ('' if not)."},
                },
                nullable=True,
                description="Every frame counted, recorded or not; null when the capture has no WebSocket.",
            ),
            "frames": {"type": "array", "items": ref("WebSocketFrame")},
        }
    ),
    "CaptureList": _object({"uri": _STRING, "requests": {"type": "array", "items": ref("Capture")}}),
    "Replay": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "The capture to replay."},
            "tunnel_name": {"type": "string", "nullable": True, "description": "Default: the capture's tunnel."},
            "tunnelName": {"type": "string", "nullable": True, "description": "npm's spelling."},
            "through_policy": {
                "type": "boolean",
                "nullable": True,
                "default": False,
                "description": "Ours: run the tunnel's Traffic Policy (on_http_request) on it first"
                " (default: straight to the service, bypassing the policy as ngrok does).",
            },
        },
        "required": ["id"],
    },
    "Status": _object(
        {
            "status": {"type": "string", "enum": ["online"]},
            "agent_version": _STRING,
            "session": _object({"legs": {"type": "array", "items": _object({"region": _STRING, "latency": _STRING})}}),
            "uri": _STRING,
        }
    ),
    "Root": _object(
        {
            key: _object({"uri": _STRING}) if key != "uri" else _STRING
            for key in ("tunnels", "endpoints", "requests", "status", "schema", "uri")
        },
        description="The resources of this API (ours: ngrok does not document /api/).",
    ),
}


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ref("Error"), description=description)


# Answers any operation may give (DRF picks them before a handler runs).
COMMON_ERRORS: dict[int, OpenApiResponse] = {
    400: _error("A bad value, or a body that is not valid JSON."),
    403: _error("A Host outside the allow-list (localhost, 127.0.0.1, [::1], web_allow_hosts)."),
    405: _error("Method not allowed (Allow lists the methods)."),
    414: _error("A request target over 16 KiB."),
    415: _error("A body that is not application/json."),
}


def responses(ok: dict[int, Any], **errors: str) -> dict[int, Any]:
    """An operation's answers: its own, `eNNN="why"` errors in the error shape, and the common ones."""
    answers: dict[int, Any] = dict(ok)
    answers.update(COMMON_ERRORS)
    for code, why in errors.items():
        answers[int(code.removeprefix("e"))] = _error(why)
    return dict(sorted(answers.items()))


def ok(name: str | None, description: str = "") -> OpenApiResponse:
    return OpenApiResponse(response=ref(name) if name else None, description=description)


NAME = OpenApiParameter(
    "name",
    str,
    OpenApiParameter.PATH,
    description="A tunnel name, percent-encoded (`a%20b`; `/` as `%2F`).",
    examples=[OpenApiExample("a tunnel", value="web")],
)
CAPTURE_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="A capture id (airt_...).")
LIMIT = OpenApiParameter(
    "limit", int, OpenApiParameter.QUERY, description="At most this many captures (default 100, max 10000)."
)
AFTER_SEQ = OpenApiParameter(
    "after", int, OpenApiParameter.QUERY, description="Only frames whose seq is larger (for live updates)."
)
TUNNEL_NAME = OpenApiParameter("tunnel_name", str, OpenApiParameter.QUERY, description="Only this tunnel's.")


def only_the_api(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular preprocessing hook: the /api/ resources once each, without trailing slashes.

    The URL patterns accept `/api/tunnels` and `/api/tunnels/`; the wire format has no trailing
    slash (except the root `/api/`), and the catch-all 404 route is no resource.
    """
    kept = []
    seen = set()
    for path, path_regex, method, callback in endpoints:
        if not path.startswith("/api/") or path.startswith("/api/{"):
            continue
        if path != "/api/":
            path = path.rstrip("/")
        if (path, method) in seen:
            continue
        seen.add((path, method))
        kept.append((path, path_regex, method, callback))
    return kept


def with_components(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the hand-written shapes the operations refer to."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(COMPONENTS)
    result["components"] = {"schemas": dict(sorted(schemas.items())), **result["components"]}
    return result


class AgentAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema for views that build their bodies by hand.

    No answer of this API is a bare list (lists come wrapped: `{"tunnels": [...], "uri": ...}`),
    and an operation is described by its own docstring or `extend_schema`, never by the view
    class's (which speaks of the view, not the operation).
    """

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False

    def get_description(self) -> str:  # type: ignore[override]
        action = getattr(self.view, getattr(self.view, "action", None) or self.method.lower(), None)
        return get_doc(action) if action is not None else ""
