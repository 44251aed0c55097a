"""What API clients post, turned into tunnel definitions the engine understands.

Two dialects arrive: the tunnels resource (a config-file tunnel definition, plus the client-side
options npm `ngrok` sends along in the same object) and the 3.30+ endpoints resource (`url`,
`upstream.url`, ... ; pyngrok 9's default), which is a tunnel seen through a newer shape.

Every value's JSON type is checked here or in tunnel_spec (null counts as absent): `"name": false`
is a 400, never a tunnel with a made-up name.

An endpoint's `traffic_policy` (a YAML or JSON string in the API, `agent/api.mdx`; a config file
may also give an object), `pooling_enabled` and `bindings` ride along in the tunnel definition,
where tunnel_spec loads and checks them; the definition keeps `traffic_policy` exactly as given,
which is what the endpoints resource echoes back.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .engine.tunnel_spec import TunnelConfigError

log = logging.getLogger(__name__)

# npm `ngrok` posts its whole options object; these are its own options or cloud-only settings.
CLIENT_OPTION_KEYS = frozenset(
    {
        "authtoken",
        "region",
        "configPath",
        "binPath",
        "onStatusChange",
        "onLogEvent",
        "onTerminated",
        "port",
        "host",
        "httpauth",
        "web_addr",
        "api_key",
    }
)
_ENDPOINT_KEYS = frozenset(
    {"name", "url", "upstream", "inspect", "traffic_policy", "pooling_enabled", "metadata", "description", "bindings"}
)
# JSON types of the endpoint keys that are not tunnel keys (those are checked by tunnel_spec).
_ENDPOINT_TYPES: dict[str, type] = {
    "name": str,
    "url": str,
    "upstream": dict,
    "traffic_policy": str,
    "pooling_enabled": bool,
    "bindings": list,
}
_UPSTREAM_TYPES: dict[str, type] = {"url": str, "protocol": str, "proxy_protocol": str}


# JSON may spell a lone UTF-16 surrogate (`"\ud800"`); Go's decoder turns it into U+FFFD, and so
# do we, before such a string reaches a name, the database or a log line.
_SURROGATE = re.compile("[\ud800-\udfff]")


def decoded_like_go(value: Any) -> Any:
    """A parsed JSON body with every lone surrogate replaced by U+FFFD, as Go's decoder does."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {decoded_like_go(key): decoded_like_go(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decoded_like_go(item) for item in value]
    return value


def _check_type(where: str, value: Any, kind: type) -> None:
    if value is not None and not isinstance(value, kind):
        expected = {str: "a string", bool: "true or false", list: "a list", dict: "an object"}[kind]
        raise TunnelConfigError(f"{where} must be {expected}")


def tunnel_definition(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TunnelConfigError("the request body must be a JSON object")
    body = decoded_like_go(body)
    # A falsy name of another type must not fall through to a generated name.
    _check_type("name", body.get("name"), str)
    ignored = sorted(CLIENT_OPTION_KEYS & body.keys())
    if ignored:
        log.info("ignoring client-side and cloud-only options: %s", ", ".join(ignored))
    return {key: value for key, value in body.items() if key not in CLIENT_OPTION_KEYS}


def endpoint_definition(body: Any, *, name: str | None = None, config_file: bool = False) -> dict[str, Any]:
    """An endpoint body as a tunnel definition (unknown keys are left for the tunnel checks).

    `config_file`: a v3 config file's endpoint, where YAML gives `traffic_policy` as an object and
    `upstream.url: 8080` as a number (`agent/config/v3.mdx`'s own examples); the API takes strings.
    Raises TunnelConfigError.
    """
    if not isinstance(body, dict):
        raise TunnelConfigError("the request body must be a JSON object")
    body = tunnel_definition(body)
    upstream = body.get("upstream")
    if config_file and isinstance(upstream, dict) and type(upstream.get("url")) is int:
        upstream = body["upstream"] = {**upstream, "url": str(upstream["url"])}
    if not isinstance(upstream, dict) or not upstream.get("url"):
        raise TunnelConfigError("upstream.url is required")
    if set(upstream) - set(_UPSTREAM_TYPES):
        extra = sorted(set(upstream) - set(_UPSTREAM_TYPES))[0]
        raise TunnelConfigError(f"field {extra} not found in type config.EndpointUpstream")
    for key in ("proto", "addr"):
        # The scheme of `url` and `upstream.url` say these; a second say would be ignored.
        if key in body:
            raise TunnelConfigError(f"field {key} not found in type config.Endpoint")
    for key, kind in _ENDPOINT_TYPES.items():
        if key == "traffic_policy" and config_file and isinstance(body.get(key), dict):
            continue
        _check_type(key, body.get(key), kind)
    for key, kind in _UPSTREAM_TYPES.items():
        _check_type(f"upstream.{key}", upstream.get(key), kind)
    if not all(isinstance(binding, str) for binding in body.get("bindings") or []):
        raise TunnelConfigError("bindings must be a list of strings")
    if upstream.get("protocol") not in (None, "", "http1"):
        raise TunnelConfigError("upstream.protocol: only http1 is supported by this agent")
    url = body.get("url") or ""
    if not isinstance(url, str):
        raise TunnelConfigError("url must be a string")
    # No scheme: http (ours, for a random local address); an internal endpoint's default is
    # https, as ngrok's (`endpoints/internal-endpoints.mdx`: `https://example.internal`).
    host = url.partition("/")[0]
    host = host.partition(":")[0] if host.count(":") == 1 else host
    default_scheme = "https" if host.lower().endswith(".internal") else "http"
    scheme, _, rest = url.partition("://") if "://" in url else (default_scheme, "", url)
    scheme = scheme.lower()
    if scheme not in ("http", "https", "tcp", "tls"):
        raise TunnelConfigError(f"Invalid protocol name '{scheme}'")
    definition: dict[str, Any] = {key: value for key, value in body.items() if key not in _ENDPOINT_KEYS}
    definition["proto"] = "http" if scheme == "https" else scheme
    definition["addr"] = upstream["url"]
    if scheme == "https":
        definition["schemes"] = ["https"]
    if rest:
        definition["url"] = f"{scheme}://{rest}"
    for key in ("inspect", "metadata", "description", "traffic_policy", "pooling_enabled", "bindings"):
        if key in body:
            definition[key] = body[key]
    if "inspect" not in body:
        definition["inspect"] = definition["proto"] == "http"
    if name is not None:
        definition["name"] = name
    elif "name" in body:
        definition["name"] = body["name"]
    return definition
