"""Tunnel definitions (config file entries and API bodies) checked and turned into TunnelSpecs.

Rules (ngrok's, see spec/wire-details.md; ours where marked):
- proto is http, tcp or tls. Unknown keys are refused with Go's wording
  (`field foo not found in type config.HTTPv2Tunnel`), never ignored.
- addr normalisation: a bare port P -> http://localhost:P for http (https://localhost:443 for 443),
  localhost:P for tcp, localhost:P for tls (tls://localhost:443 for 443). host:port gets the same
  scheme rule; a full URL is kept as given. The scheme of an http addr is how we talk upstream.
- Public side (ours): the listener binds the public host (AGENT_PUBLIC_HOST) on an ephemeral port.
  http: `url`, `hostname` or `domain` of the form [scheme://]host:port asks for that host and port;
  `subdomain` is recorded but has no local meaning. tcp/tls: `remote_addr` host:port likewise.
- 2.x spellings: `auth` = `basic_auth`; `bind_tls` true -> https, false -> http, "both" -> both.
  Both schemes give two tunnels: NAME (https) and "NAME (http)" (the pair's second listener takes an
  ephemeral port). https listeners use the agent's certificate (see agentapi/tls_identity.py).
- tls: bytes pass through to addr untouched, unless `crt` and `key` (PEM paths) are given
  (`terminate_at: agent`, the default then): the agent terminates TLS and forwards plain bytes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

PROTOS = ("http", "tcp", "tls")

_COMMON_KEYS = {"proto", "addr", "name", "inspect", "metadata", "description"}
_KEYS = {
    "http": _COMMON_KEYS
    | {
        "auth",
        "basic_auth",
        "bind_tls",
        "schemes",
        "host_header",
        "hostname",
        "subdomain",
        "domain",
        "url",
        "ip_restriction",
        "request_header",
        "compression",
    },
    "tcp": _COMMON_KEYS | {"remote_addr", "ip_restriction", "url"},
    "tls": _COMMON_KEYS
    | {"hostname", "subdomain", "domain", "url", "remote_addr", "ip_restriction", "crt", "key", "terminate_at"},
}
_GO_TYPES = {"http": "HTTPv2Tunnel", "tcp": "TCPv2Tunnel", "tls": "TLSv2Tunnel"}
# Keys of the real agent that this one does not implement yet: refused, with a plain reason.
_NOT_SUPPORTED = {"response_header", "circuit_breaker", "oauth", "oidc", "webhook_verification", "mutual_tls_cas"}


class TunnelConfigError(ValueError):
    """A definition the agent refuses; the message is what the API puts in details.err."""


@dataclass(frozen=True, slots=True)
class Upstream:
    scheme: str  # http, https, tcp, tls
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TunnelSpec:
    name: str
    proto: str  # http, https, tcp, tls: what the API reports
    addr: str  # normalised, as shown in config.addr
    upstream: Upstream
    inspect: bool
    listen_host: str
    listen_port: int  # 0: ephemeral
    basic_auth: tuple[tuple[str, str], ...] = ()
    host_header: str = ""  # "", "rewrite", "preserve" or a literal
    forward_host: bytes | None = None  # what host_header means for this upstream (None: keep Host)
    allow_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    deny_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    request_header_add: tuple[tuple[bytes, bytes], ...] = ()
    request_header_remove: frozenset[bytes] = frozenset()
    metadata: str = ""
    # The public side speaks TLS: https for http tunnels (the agent's certificate), or a tls
    # tunnel terminated here with its own crt/key (else tls tunnels pass the bytes through).
    public_tls: bool = False
    crt: str = ""
    key: str = ""
    # The definition as given (for the endpoints view and the mirror row).
    definition: dict[str, Any] = field(default_factory=dict, compare=False)


def normalise_addr(proto: str, addr: Any) -> str:
    if isinstance(addr, bool) or not isinstance(addr, (str, int)):
        raise TunnelConfigError(f"invalid addr {addr!r}: a port, host:port or URL is required")
    text = str(addr).strip()
    if not text:
        raise TunnelConfigError("addr is required")
    if "://" in text:
        _split_url(text)  # validates
        return text
    if (
        text.lstrip("+-").isascii() and text.lstrip("+-").isdigit()
    ):  # a bare port; a JSON number arrives as int (npm sends one)
        host, port = "localhost", int(text)
    else:
        host, port = _split_host_port(text, default_port=80 if proto == "http" else None)
    _check_port(port)
    if proto == "http":
        scheme = "https" if port == 443 else "http"
        return f"{scheme}://{_join(host, port)}"
    if proto == "tls" and port == 443:
        return f"tls://{_join(host, port)}"
    return _join(host, port)


def upstream_of(proto: str, addr: str) -> Upstream:
    if "://" in addr:
        scheme, host, port = _split_url(addr)
        if proto == "http" and scheme not in ("http", "https"):
            raise TunnelConfigError(f"invalid addr {addr!r}: the scheme must be http or https")
        return Upstream(scheme, host, port or (443 if scheme == "https" else 80))
    host, port = _split_host_port(addr, default_port=None)
    return Upstream(proto, host, port)


def parse_definition(definition: dict[str, Any], *, name: str, public_host: str) -> list[TunnelSpec]:
    """Check one tunnel definition; return the tunnels it opens (two for both schemes)."""
    if not isinstance(definition, dict):
        raise TunnelConfigError("a tunnel definition must be a JSON object")
    proto = definition.get("proto", "http")
    if proto not in PROTOS:
        raise TunnelConfigError(f"Invalid protocol name '{proto}'")
    for key in definition:
        if key in _NOT_SUPPORTED:
            raise TunnelConfigError(f"field {key} is not supported by this agent")
        if key not in _KEYS[proto]:
            raise TunnelConfigError(f"field {key} not found in type config.{_GO_TYPES[proto]}")
    if "addr" not in definition:
        raise TunnelConfigError("addr is required")
    addr = normalise_addr(proto, definition["addr"])
    inspect = definition.get("inspect", proto == "http")
    if not isinstance(inspect, bool):
        raise TunnelConfigError("inspect must be true or false")
    listen_host, listen_port = _listen_address(proto, definition, public_host)
    spec = TunnelSpec(
        name=name,
        proto=proto,
        addr=addr,
        upstream=upstream_of(proto, addr),
        inspect=inspect and proto == "http",
        listen_host=listen_host,
        listen_port=listen_port,
        metadata=_string(definition, "metadata"),
        definition=dict(definition),
    )
    if "ip_restriction" in definition:
        spec = replace(spec, **_ip_restriction(definition["ip_restriction"]))
    if proto == "tls":
        return [_tls_termination(spec, definition)]
    if proto != "http":
        return [spec]
    spec = replace(
        spec,
        basic_auth=_basic_auth(definition),
        host_header=_string(definition, "host_header"),
        forward_host=_forward_host(spec, _string(definition, "host_header")),
        **_request_header(definition.get("request_header")),
    )
    schemes = _schemes(definition)
    specs = []
    if "https" in schemes:
        specs.append(replace(spec, proto="https", public_tls=True))
    if "http" in schemes:
        if specs:
            # ngrok's naming for the second of a pair: the https one keeps the name.
            specs.append(replace(spec, name=f"{name} (http)", listen_port=0))
        else:
            specs.append(spec)
    return specs


def _tls_termination(spec: TunnelSpec, definition: dict[str, Any]) -> TunnelSpec:
    crt, key = _string(definition, "crt"), _string(definition, "key")
    terminate_at = _string(definition, "terminate_at") or ("agent" if crt or key else "upstream")
    if terminate_at not in ("agent", "upstream"):
        raise TunnelConfigError(f"invalid terminate_at {terminate_at!r}: agent or upstream")
    if terminate_at == "upstream":
        if crt or key:
            raise TunnelConfigError("crt and key are for terminate_at: agent")
        return spec
    if not crt or not key:
        raise TunnelConfigError("terminating TLS at the agent needs both crt and key (PEM file paths)")
    for field_name, path in (("crt", crt), ("key", key)):
        if not os.path.isfile(path):
            raise TunnelConfigError(f"{field_name} {path!r} is not a readable file")
    return replace(spec, public_tls=True, crt=crt, key=key)


def _schemes(definition: dict[str, Any]) -> list[str]:
    if "schemes" in definition:
        schemes = definition["schemes"]
        if not isinstance(schemes, list) or not schemes or any(s not in ("http", "https") for s in schemes):
            raise TunnelConfigError("schemes must be a list of http and/or https")
        return list(schemes)
    bind_tls = definition.get("bind_tls")
    if bind_tls is None or bind_tls is False or bind_tls == "false":
        return ["http"]
    if bind_tls is True or bind_tls == "true":
        return ["https"]
    if bind_tls == "both":
        return ["https", "http"]
    raise TunnelConfigError(f'invalid bind_tls {bind_tls!r}: true, false or "both"')


def _listen_address(proto: str, definition: dict[str, Any], public_host: str) -> tuple[str, int]:
    keys = ("url", "hostname", "domain") if proto == "http" else ("remote_addr", "url", "hostname", "domain")
    for key in keys:
        value = definition.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise TunnelConfigError(f"{key} must be a string")
        text = value.split("://", 1)[1] if "://" in value else value
        if not text:
            continue  # pyngrok's "tcp://": any address
        if ":" in text.rstrip("]"):
            host, port = _split_host_port(text, default_port=None)
            _check_port(port, allow_zero=True)
            return host, port
        return text, 0
    return public_host, 0


def _basic_auth(definition: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = definition.get("basic_auth", definition.get("auth"))
    if raw in (None, "", []):
        return ()
    entries = [raw] if isinstance(raw, str) else raw
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise TunnelConfigError('basic_auth must be a list of "user:password" strings')
    pairs = []
    for entry in entries:
        user, sep, password = entry.partition(":")
        if not sep or not user:
            raise TunnelConfigError(f'invalid basic_auth entry {entry!r}: expected "user:password"')
        pairs.append((user, password))
    return tuple(pairs)


def _ip_restriction(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) - {"allow_cidrs", "deny_cidrs"}:
        raise TunnelConfigError("ip_restriction takes allow_cidrs and deny_cidrs lists")
    result = {}
    for key in ("allow_cidrs", "deny_cidrs"):
        cidrs = raw.get(key) or []
        if not isinstance(cidrs, list):
            raise TunnelConfigError(f"ip_restriction.{key} must be a list")
        try:
            result[key] = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        except (ValueError, TypeError) as error:
            raise TunnelConfigError(f"invalid CIDR in ip_restriction.{key}: {error}") from None
    return result


def _request_header(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"add", "remove"}:
        raise TunnelConfigError("request_header takes add and remove lists")
    entries, names = raw.get("add") or [], raw.get("remove") or []
    if not isinstance(entries, list) or not isinstance(names, list):
        raise TunnelConfigError("request_header.add and request_header.remove must be lists of strings")
    add = []
    for entry in entries:
        name, sep, value = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not sep or not _TOKEN.fullmatch(name.strip()):
            raise TunnelConfigError(f'invalid request_header.add entry {entry!r}: expected "Name: value"')
        add.append((name.strip().encode("ascii"), _field_value(value.strip(), f"request_header.add {entry!r}")))
    remove = set()
    for name in names:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name.strip()):
            raise TunnelConfigError(f"invalid request_header.remove entry {name!r}: a header name")
        remove.add(name.strip().lower().encode("ascii"))
    return {"request_header_add": tuple(add), "request_header_remove": frozenset(remove)}


def _field_value(value: str, what: str) -> bytes:
    """A header value as bytes: no control characters (CR/LF would inject headers upstream)."""
    if _CONTROL.search(value):
        raise TunnelConfigError(f"{what}: control characters are not allowed in a header value")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise TunnelConfigError(f"{what}: header values must be Latin-1 text") from None


def _forward_host(spec: TunnelSpec, mode: str) -> bytes | None:
    """The Host header sent upstream: kept (None), the upstream's (rewrite) or a literal."""
    if not mode or mode == "preserve":
        return None
    if mode == "rewrite":
        upstream = spec.upstream
        default = 443 if upstream.scheme == "https" else 80
        host = upstream.host if upstream.port == default else f"{upstream.host}:{upstream.port}"
        try:
            return host.encode("idna")
        except UnicodeError:
            raise TunnelConfigError(f"host_header rewrite: {upstream.host!r} is not a valid host name") from None
    return _field_value(mode, "host_header")


def _string(definition: dict[str, Any], key: str) -> str:
    value = definition.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TunnelConfigError(f"{key} must be a string")
    return value


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST = re.compile(r"[A-Za-z0-9._\-]+|[0-9A-Fa-f:.%]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _split_url(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TunnelConfigError(f"invalid addr {url!r}: {error}") from None
    if not parts.scheme or not parts.hostname:
        raise TunnelConfigError(f"invalid addr {url!r}")
    if port is not None:
        _check_port(port)
    return parts.scheme, parts.hostname, port


def _split_host_port(text: str, *, default_port: int | None) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not port_text:
        if default_port is None:
            raise TunnelConfigError(f"invalid address {text!r}: host:port expected")
        return _checked_host(host, text) or "localhost", default_port
    if not (port_text.isascii() and port_text.isdigit()):
        raise TunnelConfigError(f"invalid port in {text!r}")
    return _checked_host(host, text) or "localhost", int(port_text)


def _checked_host(host: str, text: str) -> str:
    # ASCII host names and IP literals only (an IDN goes in its punycode form): anything else
    # could not be dialled or sent as a Host header.
    if host and not _HOST.fullmatch(host):
        raise TunnelConfigError(f"invalid host in {text!r}")
    return host


def _check_port(port: int, *, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise TunnelConfigError(f"invalid port {port}: must be 1-65535")


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
