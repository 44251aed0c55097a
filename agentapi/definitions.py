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

Endpoint keys as tunnel keys (`agent/config/v3.mdx` "Endpoint configuration options"):
- `url`: `scheme://host[:port]`, a host alone, a scheme alone (a random address) or empty. A v3
  config file's endpoint without a scheme is https, as ngrok 3's ("When empty your endpoint will
  default to be https"); an API body's is http (ours, what this agent's clients expect), except a
  `.internal` host, https in both.
- `upstream.url`: a port, host[:port], a URL, or a scheme alone (`https://` is localhost:443,
  `http://` localhost:80). `upstream.protocol`: http1 (h2c is refused). `upstream.proxy_protocol`
  (1 or 2; a number in YAML) becomes `proxy_protocol`.
- `agent_tls_termination` (tls:// URLs only): `server_certificate` and `server_private_key`, each a
  file path or the PEM text itself, become `crt` and `key` (terminate at the agent). Inline PEM is
  written to AGENT_DATA_DIR/tls/endpoint-<sha256>.pem (mode 0600; the same text, the same file).
  `mutual_tls_certificate_authorities` (client certificates) is refused unless empty: the agent's
  TLS termination does not ask for client certificates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

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
    {
        "name",
        "url",
        "upstream",
        "inspect",
        "traffic_policy",
        "pooling_enabled",
        "metadata",
        "description",
        "bindings",
        "agent_tls_termination",
    }
)
_TLS_TERMINATION_KEYS = ("server_certificate", "server_private_key", "mutual_tls_certificate_authorities")
NO_CLIENT_CERTIFICATES = (
    "agent_tls_termination.mutual_tls_certificate_authorities: client certificates are not asked for by this "
    "agent's TLS termination; leave it out (or check them with a Traffic Policy in front of a service that does)"
)
# JSON types of the endpoint keys that are not tunnel keys (those are checked by tunnel_spec).
_ENDPOINT_TYPES: dict[str, type] = {
    "name": str,
    "url": str,
    "upstream": dict,
    "traffic_policy": str,
    "pooling_enabled": bool,
    "bindings": list,
    "agent_tls_termination": dict,
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
    if config_file and isinstance(upstream, dict):
        # YAML writes `url: 8080` and `proxy_protocol: 2` as numbers (agent/config/v3.mdx's examples).
        numbers = {key: str(upstream[key]) for key in ("url", "proxy_protocol") if type(upstream.get(key)) is int}
        upstream = body["upstream"] = {**upstream, **numbers}
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
    # No scheme: a config file's is https, as ngrok 3's; an API body's http (ours, for a random
    # local address); an internal endpoint's https, as ngrok's (`endpoints/internal-endpoints.mdx`).
    host = url.partition("/")[0]
    host = host.partition(":")[0] if host.count(":") == 1 else host
    default_scheme = "https" if config_file or host.lower().endswith(".internal") else "http"
    scheme, _, rest = url.partition("://") if "://" in url else (default_scheme, "", url)
    scheme = scheme.lower()
    if scheme not in ("http", "https", "tcp", "tls"):
        raise TunnelConfigError(f"Invalid protocol name '{scheme}'")
    definition: dict[str, Any] = {key: value for key, value in body.items() if key not in _ENDPOINT_KEYS}
    definition["proto"] = "http" if scheme == "https" else scheme
    definition["addr"] = _upstream_addr(upstream["url"])
    if scheme == "https":
        definition["schemes"] = ["https"]
    if upstream.get("proxy_protocol") not in (None, ""):
        definition["proxy_protocol"] = upstream["proxy_protocol"]
    if body.get("agent_tls_termination") is not None:
        if scheme != "tls":
            raise TunnelConfigError("agent_tls_termination is for tls:// endpoints (url: tls://...)")
        definition.update(_tls_termination(body["agent_tls_termination"]))
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


def _upstream_addr(url: str) -> str:
    """`upstream.url` as a tunnel addr: a scheme alone means that scheme's port on localhost."""
    lowered = url.strip().lower()
    if lowered in ("http://", "https://"):
        return f"{lowered}localhost"
    return url


def _tls_termination(raw: dict[str, Any]) -> dict[str, Any]:
    """`agent_tls_termination` as the tls tunnel keys crt, key and terminate_at. Raises TunnelConfigError."""
    unknown = sorted(set(raw) - set(_TLS_TERMINATION_KEYS))
    if unknown:
        raise TunnelConfigError(f"field {unknown[0]} not found in type config.AgentTLSTermination")
    if raw.get("mutual_tls_certificate_authorities"):
        raise TunnelConfigError(NO_CLIENT_CERTIFICATES)
    keys: dict[str, Any] = {}
    for field_name, key in (("server_certificate", "crt"), ("server_private_key", "key")):
        value = raw.get(field_name)
        if value in (None, ""):
            raise TunnelConfigError(f"agent_tls_termination.{field_name} is required (a file path or PEM text)")
        if not isinstance(value, str):
            raise TunnelConfigError(f"agent_tls_termination.{field_name} must be a file path or PEM text")
        keys[key] = pem_file(value) if is_pem(value) else value
    keys["terminate_at"] = "agent"
    return keys


def is_pem(value: str) -> bool:
    """Whether a certificate or key value is the PEM text itself rather than a path."""
    return value.lstrip().startswith("-----BEGIN ")


def pem_file(text: str) -> str:
    """The path of a file holding `text` (PEM), written once under AGENT_DATA_DIR/tls (mode 0600).

    Content-addressed, so the same text is one file however often it is given. Raises
    TunnelConfigError when the directory cannot be written.
    """
    directory = Path(settings.DATA_DIR) / "tls"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    path = directory / f"endpoint-{digest}.pem"
    if path.exists():
        return str(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".endpoint-", dir=directory)  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text if text.endswith("\n") else text + "\n")
        os.replace(temporary, path)
    except OSError as error:
        raise TunnelConfigError(f"cannot keep the PEM text in {directory}: {error.strerror or error}") from None
    return str(path)
