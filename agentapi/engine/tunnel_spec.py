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
- Values (ours): every key has a JSON type (see _KEY_TYPES; true/false is never a number) and
  null means absent, as for Go's decoder. Strings hold at most MAX_STRING characters, lists and
  objects at most MAX_ITEMS entries, numbers fit Go's int64 and are finite. Anything else is refused
  with a message naming the key, so a bad value is a 400, never a crash further down.
- Addresses follow Go's net.SplitHostPort: an IPv6 literal goes in brackets (`[::1]:8080`), a
  colon with nothing after it is refused (no silent port 80), host names are ASCII with labels of
  1-63 characters. Wherever a host and a port are written together again (config.addr, the Host
  header of `host_header: rewrite`, public URLs, log lines) an IPv6 literal is bracketed:
  `join_host_port`.
- http `response_timeout` (ours): how long the local service may take to start its answer before
  the agent gives 504, in seconds (a number) or a Go duration string ("90s", "5m", "1m30s");
  default AGENT_UPSTREAM_TIMEOUT.
- Traffic Policy (`agent/config/v2.mdx`, `v3.mdx`): `traffic_policy` is a YAML or JSON string or an
  object, for every proto (tcp and tls have only on_tcp_connect); `policy` is its pre-3.14 name.
  The deprecated keys (`basic_auth`, `ip_restriction`, `request_header`, `response_header`,
  `compression`, `circuit_breaker`, `verify_webhook`, `user_agent_filter`) become policy rules
  (policy/legacy.py), which run before the given policy's rules of the same phase; each logs ngrok's
  deprecation notice once per definition parsed. The given policy is checked alone first, so an
  error names its own rule indexes; a bad one is refused with ngrok's ERR_NGROK_9026 wording
  (TrafficPolicyError). The definition keeps `traffic_policy` as given (the API echoes it).
  Cloud-only keys (`oauth`, `oidc`, `mutual_tls_cas`, `labels`) are refused with the reason.
- Internal endpoints (`endpoints/internal-endpoints.mdx`): a `url` whose host ends in `.internal`,
  or `bindings: [internal]` (which then needs such a URL), makes an endpoint with no listener,
  reached only through forward-internal by `internal_url`: the URL as written, the scheme added
  when missing (https for http, else the proto); tcp needs a port. `bindings` holds at most one of
  public and internal (kubernetes needs ngrok's cloud). `pooling_enabled` is carried to the engine.
- The built-in file server (`snippets/gateway/shared/http-end-source.mdx` "Serving file
  directories"; `agent/cli.mdx`: `ngrok http file:///var/log`): an http addr `file:///abs/dir`
  (`file://localhost/abs/dir` too; percent-escapes decoded) serves that directory. The path must
  be absolute and an existing directory; a query, a fragment or another host is refused.
  `file_root` holds it; `upstream` is a placeholder (127.0.0.1, port 0) the engine replaces with
  its own file server's address when the tunnel opens (engine.py, file_server.py).
- PROXY protocol (`agent/config/v3.mdx` `upstream.proxy_protocol`, v2 `proxy_proto`; HAProxy's
  proxy-protocol.txt): `proxy_protocol` (or its v2 name `proxy_proto`) is "1" or "2" (a number
  too; empty: none), on http, tcp and tls tunnels, never with a file:// addr (the agent's own file
  server reads no PROXY header).
- Upstream TLS (`agent/cli.mdx` `--upstream-tls-verify`, `--upstream-tls-verify-cas`;
  http-end-source.mdx "HTTPS forwarding": not verified by default): `upstream_tls_verify: true`
  verifies an https addr's certificate and host name against the system store, or against the
  PEM file `upstream_tls_verify_cas` names (which alone turns verification on; with an explicit
  `upstream_tls_verify: false` it is refused as a contradiction). Refused for an addr the agent
  does not speak TLS to: http://, file://, and tls tunnels (their bytes pass through, or leave
  the agent plain).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from .policy import Policy, PolicyError, load_policy
from .policy.document import MAX_POLICY_BYTES, parse_policy_text
from .policy.legacy import HTTP_KEYS, REFUSED_KEYS, LegacyKeyError, legacy_policy

log = logging.getLogger(__name__)

PROTOS = ("http", "tcp", "tls")

MAX_STRING = 4096  # characters in any string of a definition (ngrok's metadata limit)
MAX_ITEMS = 1000  # entries in any list or object of a definition
MAX_DEPTH = 4  # nesting of lists and objects (ip_restriction.allow_cidrs is 2 deep)
MAX_RESPONSE_TIMEOUT = 24 * 3600.0  # seconds; more is a typo, not a wish
_INT64 = 2**63

_COMMON_KEYS = {
    "proto",
    "addr",
    "name",
    "inspect",
    "metadata",
    "description",
    "traffic_policy",
    "policy",
    "pooling_enabled",
    "bindings",
}
_PROXY_PROTOCOL_KEYS = ("proxy_protocol", "proxy_proto")  # proxy_proto: the v2 config name
_UPSTREAM_TLS_KEYS = {"upstream_tls_verify", "upstream_tls_verify_cas"}
_KEYS = {
    "http": _COMMON_KEYS
    | HTTP_KEYS
    | set(_PROXY_PROTOCOL_KEYS)
    | _UPSTREAM_TLS_KEYS
    | {"bind_tls", "schemes", "host_header", "hostname", "subdomain", "domain", "url", "response_timeout"},
    "tcp": _COMMON_KEYS | set(_PROXY_PROTOCOL_KEYS) | {"remote_addr", "ip_restriction", "url"},
    "tls": _COMMON_KEYS
    | set(_PROXY_PROTOCOL_KEYS)
    | _UPSTREAM_TLS_KEYS
    | {"hostname", "subdomain", "domain", "url", "remote_addr", "ip_restriction", "crt", "key", "terminate_at"},
}
_GO_TYPES = {"http": "HTTPv2Tunnel", "tcp": "TCPv2Tunnel", "tls": "TLSv2Tunnel"}
_POLICY_KEYS = ("traffic_policy", "policy")  # policy: the name before agent 3.14
_OLD_PHASE_NAMES = {"inbound": "on_http_request", "outbound": "on_http_response"}
# The JSON types each key may hold (bool is never taken for int); null is always allowed (= absent).
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "proto": (str,),
    "addr": (str, int),
    "name": (str,),
    "inspect": (bool,),
    "metadata": (str,),
    "description": (str,),
    "auth": (str, list),
    "basic_auth": (str, list),
    "bind_tls": (bool, str),
    "schemes": (list,),
    "host_header": (str,),
    "hostname": (str,),
    "subdomain": (str,),
    "domain": (str,),
    "url": (str,),
    "ip_restriction": (dict,),
    "request_header": (dict,),
    "response_header": (dict,),
    "compression": (bool,),
    "circuit_breaker": (int, float),
    "verify_webhook": (dict,),
    "webhook_verification": (dict,),
    "user_agent_filter": (dict,),
    "traffic_policy": (str, dict),
    "policy": (str, dict),
    "pooling_enabled": (bool,),
    "bindings": (list,),
    "remote_addr": (str,),
    "crt": (str,),
    "key": (str,),
    "terminate_at": (str,),
    "response_timeout": (int, float, str),
    "proxy_protocol": (str, int),
    "proxy_proto": (str, int),
    "upstream_tls_verify": (bool,),
    "upstream_tls_verify_cas": (str,),
}
_TYPE_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


class TunnelConfigError(ValueError):
    """A definition the agent refuses; the message is what the API puts in details.err."""


class TrafficPolicyError(TunnelConfigError):
    """A `traffic_policy` that does not parse or validate: ngrok's ERR_NGROK_9026.

    The message is ngrok's ("The TrafficPolicy you provided is invalid: ...") with the place
    PolicyError names: the phase, the rule, the action and the field.
    """

    error_code = "ERR_NGROK_9026"


@dataclass(frozen=True, slots=True)
class Upstream:
    scheme: str  # http, https, tcp, tls
    host: str  # without brackets
    port: int

    @property
    def netloc(self) -> str:
        """host:port as written in a URL, a Host header or a log line ([::1]:8080)."""
        return join_host_port(self.host, self.port)


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: an IPv6 literal goes in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class TunnelSpec:
    name: str
    proto: str  # http, https, tcp, tls: what the API reports
    addr: str  # normalised, as shown in config.addr
    upstream: Upstream
    inspect: bool
    listen_host: str  # without brackets
    listen_port: int  # 0: ephemeral
    host_header: str = ""  # "", "rewrite", "preserve" or a literal
    forward_host: bytes | None = None  # what host_header means for this upstream (None: keep Host)
    metadata: str = ""
    # The public side speaks TLS: https for http tunnels (the agent's certificate), or a tls
    # tunnel terminated here with its own crt/key (else tls tunnels pass the bytes through).
    public_tls: bool = False
    crt: str = ""
    key: str = ""
    # Seconds the local service may take to start answering (504 after); None: the agent's default.
    response_timeout: float | None = None
    # The Traffic Policy it runs (the deprecated keys' rules included); None: none.
    policy: Policy | None = field(default=None, compare=False)
    # An internal endpoint (a `.internal` URL or `bindings: [internal]`): no listener; reached
    # only through forward-internal, by `internal_url`.
    internal: bool = False
    internal_url: str = ""
    pooling_enabled: bool = False
    # The built-in file server's directory (an addr `file:///dir`); "" for a real local service.
    file_root: str = ""
    # The PROXY protocol header each upstream connection starts with: 0 (none), 1 or 2.
    proxy_protocol: int = 0
    # Verify an https upstream's certificate, against this PEM file ("" : the system store).
    upstream_tls_verify: bool = False
    upstream_tls_verify_cas: str = ""
    # The definition as given (for the endpoints view and the mirror row).
    definition: dict[str, Any] = field(default_factory=dict, compare=False)


def normalise_addr(proto: str, addr: Any) -> str:
    if isinstance(addr, bool) or not isinstance(addr, (str, int)):
        raise TunnelConfigError(f"invalid addr {addr!r}: a port, host:port or URL is required")
    text = str(addr).strip()
    if not text:
        raise TunnelConfigError("addr is required")
    if len(text) > MAX_STRING:
        raise TunnelConfigError(f"addr is too long: at most {MAX_STRING} characters")
    if is_file_addr(text):
        file_root(proto, text)  # validates
        return text
    if "://" in text:
        _split_url(text)  # validates
        return text
    if (
        text.lstrip("+-").isascii() and text.lstrip("+-").isdigit()
    ):  # a bare port; a JSON number arrives as int (npm sends one)
        host, port = "localhost", _port_number(text.removeprefix("+"), text)
    else:
        host, port = _split_host_port(text, default_port=80 if proto == "http" else None, default_host="localhost")
    _check_port(port)
    if proto == "http":
        scheme = "https" if port == 443 else "http"
        return f"{scheme}://{join_host_port(host, port)}"
    if proto == "tls" and port == 443:
        return f"tls://{join_host_port(host, port)}"
    return join_host_port(host, port)


# Where a file:// tunnel's upstream points until the engine starts its file server.
FILE_SERVER_PLACEHOLDER = Upstream("http", "127.0.0.1", 0)


def is_file_addr(addr: str) -> bool:
    """Whether an addr names a directory for the built-in file server (`file:...`)."""
    return addr[:5].lower() == "file:"


def file_root(proto: str, addr: str) -> str:
    """The directory a `file:///abs/dir` addr serves (absolute, normalised, escapes decoded).

    Raises TunnelConfigError for another proto, a relative path, another host, a query or a
    fragment, or a path that is not an existing directory.
    """
    shown = _shown(addr, 256)
    if proto != "http":
        raise TunnelConfigError(f"invalid addr {shown!r}: a file:// addr is served over http, not {proto}")
    if not addr[5:].startswith("//"):
        raise TunnelConfigError(f"invalid addr {shown!r}: write a directory as file:///absolute/path")
    if "?" in addr or "#" in addr:
        raise TunnelConfigError(f"invalid addr {shown!r}: a file:// addr has no query or fragment")
    authority, slash, rest = addr[7:].partition("/")
    if authority.lower() not in ("", "localhost"):
        raise TunnelConfigError(
            f"invalid addr {shown!r}: a file:// addr names a local directory (file:///absolute/path)"
        )
    try:
        path = unquote(slash + rest, errors="strict")
    except UnicodeDecodeError:
        raise TunnelConfigError(f"invalid addr {shown!r}: the path's escapes are not UTF-8") from None
    if not path.startswith("/"):
        raise TunnelConfigError(f"invalid addr {shown!r}: the path of a file:// addr must be absolute")
    if "\x00" in path:
        raise TunnelConfigError(f"invalid addr {shown!r}: the path holds a NUL character")
    root = os.path.normpath(path)
    if root.startswith("//"):
        root = "/" + root.lstrip("/")  # POSIX keeps a leading "//"; it means "/" here
    if not os.path.isdir(root):
        raise TunnelConfigError(f"invalid addr {shown!r}: {root!r} is not a directory")
    return root


def upstream_of(proto: str, addr: str) -> Upstream:
    if is_file_addr(addr):
        return FILE_SERVER_PLACEHOLDER
    if "://" in addr:
        scheme, host, port = _split_url(addr)
        if proto == "http" and scheme not in ("http", "https"):
            raise TunnelConfigError(f"invalid addr {addr!r}: the scheme must be http or https")
        return Upstream(scheme, host, port or (443 if scheme == "https" else 80))
    host, port = _split_host_port(addr, default_port=None, default_host="localhost")
    return Upstream(proto, host, port)


def parse_definition(definition: dict[str, Any], *, name: str, public_host: str) -> list[TunnelSpec]:
    """Check one tunnel definition; return the tunnels it opens (two for both schemes).

    Each tunnel gets its own loaded Policy (actions keep state: a rate limiter's buckets), closed
    by whoever stops it. Raises TunnelConfigError (TrafficPolicyError for a bad traffic_policy).
    """
    if not isinstance(definition, dict):
        raise TunnelConfigError("a tunnel definition must be a JSON object")
    proto = definition.get("proto", "http")
    if proto not in PROTOS:
        raise TunnelConfigError(f"Invalid protocol name '{_shown(proto)}'")
    for key in definition:
        if key in REFUSED_KEYS and key not in _KEYS[proto]:
            raise TunnelConfigError(REFUSED_KEYS[key])
        if key not in _KEYS[proto]:
            raise TunnelConfigError(f"field {_shown(key)} not found in type config.{_GO_TYPES[proto]}")
    _check_values(definition)
    if definition.get("addr") is None:
        raise TunnelConfigError("addr is required")
    addr = normalise_addr(proto, definition["addr"])
    inspect = definition.get("inspect")
    if inspect is None:
        inspect = proto == "http"
    internal_url = _internal_url(proto, definition)
    if internal_url:
        listen_host, listen_port = _public_host(public_host), 0  # no listener
    else:
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
        internal=bool(internal_url),
        internal_url=internal_url,
        pooling_enabled=definition.get("pooling_enabled") is True,
        file_root=file_root(proto, addr) if is_file_addr(addr) else "",
        definition=dict(definition),
    )
    spec = _upstream_options(spec, definition)
    if proto == "tls":
        specs = [_tls_termination(spec, definition)]
    elif proto != "http":
        specs = [spec]
    else:
        spec = replace(
            spec,
            host_header=_string(definition, "host_header"),
            forward_host=_forward_host(spec, _string(definition, "host_header")),
            response_timeout=response_timeout(definition.get("response_timeout")),
        )
        if internal_url:
            https = internal_url.startswith("https://")
            specs = [replace(spec, proto="https" if https else "http", public_tls=https)]
        else:
            specs = _scheme_specs(spec, _schemes(definition))
    # The policy last: nothing after it can fail, so no loaded policy is left unclosed.
    policy, source = _policy(definition, proto, name)
    if policy is None or source is None:
        return specs
    # Each tunnel of a pair runs its own policy: actions keep state (rate-limit buckets, breakers).
    policy_proto = "http" if proto == "http" else proto
    return [
        replace(s, policy=policy if i == 0 else load_policy(source, proto=policy_proto)) for i, s in enumerate(specs)
    ]


def _upstream_options(spec: TunnelSpec, definition: dict[str, Any]) -> TunnelSpec:
    """proxy_protocol and upstream_tls_verify(_cas), checked against the addr (see the banner)."""
    version = proxy_protocol_version(definition)
    if version and spec.file_root:
        raise TunnelConfigError("proxy_protocol: the built-in file server of a file:// addr reads no PROXY header")
    verify = definition.get("upstream_tls_verify")
    cas = _string(definition, "upstream_tls_verify_cas").strip()
    if cas and verify is False:
        raise TunnelConfigError("upstream_tls_verify_cas is given but upstream_tls_verify is false")
    if not (verify or cas):
        return replace(spec, proxy_protocol=version)
    if spec.proto == "tls":
        raise TunnelConfigError(
            "upstream_tls_verify: this agent never speaks TLS to a tls tunnel's upstream "
            "(the bytes pass through, or leave the agent plain after crt/key termination)"
        )
    if spec.upstream.scheme != "https" or spec.file_root:
        raise TunnelConfigError(
            f"upstream_tls_verify: the addr {_shown(spec.addr)!r} is not https, so there is no "
            "certificate to verify (write https://host:port)"
        )
    if cas:
        _check_ca_file(cas)
    return replace(spec, proxy_protocol=version, upstream_tls_verify=True, upstream_tls_verify_cas=cas)


def proxy_protocol_version(definition: dict[str, Any]) -> int:
    """`proxy_protocol` (or `proxy_proto`) as 0 (none), 1 or 2. Raises TunnelConfigError."""
    given = {key: definition[key] for key in _PROXY_PROTOCOL_KEYS if definition.get(key) not in (None, "")}
    if len(given) > 1:
        raise TunnelConfigError("proxy_protocol and proxy_proto are two names of one key: give one")
    if not given:
        return 0
    [(key, raw)] = given.items()
    text = raw.strip() if isinstance(raw, str) else raw
    if text in ("1", 1):
        return 1
    if text in ("2", 2):
        return 2
    raise TunnelConfigError(f"invalid {key} {_shown(raw)!r}: 1 or 2 (the PROXY protocol version), or empty for none")


def _check_ca_file(path: str) -> None:
    """`upstream_tls_verify_cas` must be a readable PEM file of CA certificates."""
    if not os.path.isfile(path):
        raise TunnelConfigError(f"upstream_tls_verify_cas {path!r} is not a readable file")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "reason", None) or error
        raise TunnelConfigError(f"upstream_tls_verify_cas {path!r} holds no PEM CA certificate: {reason}") from None


def _scheme_specs(spec: TunnelSpec, schemes: list[str]) -> list[TunnelSpec]:
    """An http tunnel's public schemes as tunnels: https keeps the name, as in ngrok's pairs."""
    specs = []
    if "https" in schemes:
        specs.append(replace(spec, proto="https", public_tls=True))
    if "http" in schemes:
        if specs:
            # ngrok's naming for the second of a pair: the https one keeps the name.
            specs.append(replace(spec, name=f"{spec.name} (http)", listen_port=0))
        else:
            specs.append(spec)
    return specs


def _policy(definition: dict[str, Any], proto: str, name: str) -> tuple[Policy | None, str | dict[str, Any] | None]:
    """The Traffic Policy of a definition, loaded, and what it was loaded from (for a twin).

    The deprecated keys' rules come first in each phase, then the given policy's. None when
    nothing asks for a rule.
    """
    given = _given_policy(definition, name)
    policy_proto = "http" if proto == "http" else proto
    try:
        legacy = legacy_policy(definition, proto=proto)
    except LegacyKeyError as error:
        raise TunnelConfigError(str(error)) from None
    for notice in legacy.notices:
        log.warning('tunnel "%s": %s', name, notice)
    if given is not None:
        try:
            # Alone first: an error names the rule by its index in the policy as written.
            policy = load_policy(given, proto=policy_proto)
        except PolicyError as error:
            raise TrafficPolicyError(f"The TrafficPolicy you provided is invalid: {error} (ERR_NGROK_9026)") from None
        if not legacy.document:
            return _in_use(policy), given
        policy.close()
    if not legacy.document:
        return None, None
    source: dict[str, Any] = _combined(legacy.document, given)
    try:
        policy = load_policy(source, proto=policy_proto)
    except PolicyError as error:
        # The given policy loaded alone: the rule named here is a deprecated key's.
        raise TunnelConfigError(str(error)) from None
    return _in_use(policy), source


def _given_policy(definition: dict[str, Any], name: str) -> str | dict[str, Any] | None:
    """`traffic_policy` (or its old name `policy`) as given; None when absent or empty."""
    given = {key: definition[key] for key in _POLICY_KEYS if definition.get(key) not in (None, "")}
    if len(given) > 1:
        raise TunnelConfigError("traffic_policy and policy are two names of one key: give one")
    if not given:
        return None
    [(key, raw)] = given.items()
    if key == "policy":
        log.warning('tunnel "%s": policy has been renamed to traffic_policy in agent version 3.14.0', name)
    if isinstance(raw, dict):
        try:
            size = len(json.dumps(raw))
        except (TypeError, ValueError, RecursionError):
            raise TrafficPolicyError(
                f"The TrafficPolicy you provided is invalid: {key} must be JSON data (ERR_NGROK_9026)"
            ) from None
        if size > MAX_POLICY_BYTES:
            raise TrafficPolicyError(
                f"The TrafficPolicy you provided is invalid: the policy is larger than "
                f"{MAX_POLICY_BYTES // 1024} KiB (ERR_NGROK_9026)"
            )
    return raw  # a str or a dict: _check_values checked its type


def _combined(legacy: dict[str, list[dict[str, Any]]], given: str | dict[str, Any] | None) -> dict[str, Any]:
    """The deprecated keys' rules, then the given policy's (already checked), phase by phase."""
    combined: dict[str, Any] = {phase: list(rules) for phase, rules in legacy.items()}
    document = given if isinstance(given, dict) else parse_policy_text(given) if given is not None else None
    for key, rules in (document or {}).items():
        phase = _OLD_PHASE_NAMES.get(key, key)
        if rules:
            # An unnamed rule keeps the name it has alone ("rules[0]"), not its place after the
            # deprecated keys' rules: the trace and the load errors then agree.
            named = [
                {**rule, "name": f"rules[{index}]"} if isinstance(rule, dict) and not rule.get("name") else rule
                for index, rule in enumerate(rules)
            ]
            combined[phase] = combined.get(phase, []) + named
    return combined


def _in_use(policy: Policy) -> Policy | None:
    """The policy, or None when no phase has a rule (an endpoint without one pays nothing)."""
    if policy.actions():
        return policy
    policy.close()
    return None


def _internal_url(proto: str, definition: dict[str, Any]) -> str:
    """The URL of an internal endpoint ("" for a public one); see the banner for the rules."""
    bindings = definition.get("bindings") or []
    if not all(isinstance(binding, str) for binding in bindings):
        raise TunnelConfigError("bindings must be a list of strings")
    if len(bindings) > 1:
        raise TunnelConfigError("bindings: only one binding may be given (public or internal)")
    binding = bindings[0] if bindings else ""
    if binding == "kubernetes":
        raise TunnelConfigError("bindings: kubernetes endpoints need ngrok's cloud (the ngrok Kubernetes Operator)")
    if binding not in ("", "public", "internal"):
        raise TunnelConfigError(f"bindings: unknown binding {_shown(binding)!r}: public or internal")
    url = _string(definition, "url").strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest = rest.removesuffix("/")
    authority = rest.partition("/")[0]
    host = authority.rpartition(":")[0] if authority.count(":") == 1 else authority
    internal_host = host.lower().endswith(".internal")
    if binding == "public" and internal_host:
        raise TunnelConfigError(f"{_shown(url)!r} is an internal endpoint URL: its binding must be internal")
    if binding != "internal" and not internal_host:
        return ""
    if not internal_host:
        raise TunnelConfigError(
            "an internal endpoint needs a url whose host ends in .internal (e.g. https://api.internal)"
        )
    scheme = scheme.lower() or _internal_scheme(proto, definition)
    allowed = ("http", "https") if proto == "http" else (proto,)
    if scheme not in allowed:
        raise TunnelConfigError(f"invalid url {_shown(url)!r}: a {proto} endpoint's scheme is {' or '.join(allowed)}")
    if "/" in rest:
        raise TunnelConfigError(f"invalid url {_shown(url)!r}: an endpoint URL has no path")
    host, port = _split_host_port(rest, default_port=0, default_host="")
    _check_port(port, allow_zero=True)
    if scheme == "tcp" and not port:
        raise TunnelConfigError(f"invalid url {_shown(url)!r}: an internal tcp endpoint needs a port")
    return f"{scheme}://{rest}"


def _internal_scheme(proto: str, definition: dict[str, Any]) -> str:
    """An internal URL written without a scheme: https for http (ngrok's v3 default), else the proto."""
    if proto != "http":
        return proto
    schemes = _schemes(definition) if ("schemes" in definition or "bind_tls" in definition) else ["https"]
    if len(schemes) != 1:
        raise TunnelConfigError("an internal endpoint has one URL: give one scheme")
    return schemes[0]


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
    default_host = _public_host(public_host)
    keys = ("url", "hostname", "domain") if proto == "http" else ("remote_addr", "url", "hostname", "domain")
    for key in keys:
        value = definition.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise TunnelConfigError(f"{key} must be a string")
        text = value.split("://", 1)[1] if "://" in value else value
        text = text.removesuffix("/")
        if not text:
            continue  # pyngrok's "tcp://": any address
        host, port = _split_host_port(text, default_port=0, default_host=default_host)
        _check_port(port, allow_zero=True)
        return host, port
    return default_host, 0


def _public_host(public_host: str) -> str:
    """AGENT_PUBLIC_HOST as a listen host: `::1` and `[::1]` both mean ::1."""
    text = public_host.strip()
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return _ipv6_literal(host, public_host) if ":" in host else _checked_host(host, public_host)
    except TunnelConfigError:
        raise TunnelConfigError(f"AGENT_PUBLIC_HOST {public_host!r} is not a host name or IP address") from None


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
        if upstream.port == default:
            host = f"[{upstream.host}]" if ":" in upstream.host else upstream.host
        else:
            host = upstream.netloc
        try:
            return host.encode("ascii")
        except UnicodeError:
            raise TunnelConfigError(f"host_header rewrite: {upstream.host!r} is not a valid host name") from None
    return _field_value(mode, "host_header")


def response_timeout(raw: Any) -> float | None:
    """`response_timeout` in seconds: a positive number, or a Go duration string ("90s", "1m30s")."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if not _GO_DURATION.fullmatch(text):
            raise TunnelConfigError(
                f'invalid response_timeout {_shown(raw)!r}: seconds, or a duration such as "90s", "5m" or "1m30s"'
            )
        seconds = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = float(raw) if abs(raw) < _INT64 else math.inf
    else:
        raise TunnelConfigError("response_timeout must be a number of seconds or a duration string")
    if not 0 < seconds <= MAX_RESPONSE_TIMEOUT:
        raise TunnelConfigError(
            f"invalid response_timeout {_shown(raw)!r}: more than 0 and at most {MAX_RESPONSE_TIMEOUT:g} seconds"
        )
    return seconds


def _check_values(definition: dict[str, Any]) -> None:
    """Each key's JSON type, and bounds on every string, list and number in it (see the banner)."""
    for key, value in definition.items():
        if value is None:
            continue  # null is absent, as for Go's decoder
        allowed = _KEY_TYPES.get(key)
        if allowed is not None and (
            not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        ):
            expected = " or ".join(_TYPE_NAMES[kind] for kind in allowed)
            raise TunnelConfigError(f"{key} must be {expected}")
        if key not in _POLICY_KEYS:  # a policy has its own bounds (document.py, _given_policy)
            _check_size(value, str(key), 0)


def _check_size(value: Any, where: str, depth: int) -> None:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise TunnelConfigError(f"{where} is too long: at most {MAX_STRING} characters")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise TunnelConfigError(f"{where} is out of range")
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= _INT64:
            raise TunnelConfigError(f"{where} is out of range")
    elif isinstance(value, (list, dict)):
        if depth >= MAX_DEPTH:
            raise TunnelConfigError(f"{where} is nested too deeply")
        if len(value) > MAX_ITEMS:
            raise TunnelConfigError(f"{where} has too many entries: at most {MAX_ITEMS}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict):
                if not isinstance(key, str):
                    raise TunnelConfigError(f"{where} must have string keys")
                _check_size(key, f"{where} key", depth + 1)
                _check_size(item, f"{where}.{_shown(key)}", depth + 1)
            else:
                _check_size(item, f"{where}[{key}]", depth + 1)
    else:  # a YAML date, a set, ...: nothing JSON could send
        raise TunnelConfigError(f"{where} must be JSON data, not {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _shown(value: Any, limit: int = 64) -> str:
    """A value for an error message, cut short: a refusal never echoes megabytes back."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _string(definition: dict[str, Any], key: str) -> str:
    value = definition.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TunnelConfigError(f"{key} must be a string")
    return value


_HOSTNAME = re.compile(r"[A-Za-z0-9._\-]+")
_ZONE = re.compile(r"[A-Za-z0-9._\-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _split_url(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TunnelConfigError(f"invalid addr {url!r}: {error}") from None
    if not parts.scheme or not parts.hostname:
        raise TunnelConfigError(f"invalid addr {url!r}")
    if parts.netloc.endswith(":"):
        raise TunnelConfigError(f"invalid addr {url!r}: the port is empty")
    if parts.netloc.rpartition("@")[2].startswith("["):
        _ipv6_literal(parts.hostname, url)
    elif ":" in parts.hostname:
        raise TunnelConfigError(f"invalid addr {url!r}: an IPv6 address goes in brackets")
    else:
        _checked_host(parts.hostname, url)
    if port is not None:
        _check_port(port)
    return parts.scheme, parts.hostname, port


def _split_host_port(text: str, *, default_port: int | None, default_host: str) -> tuple[str, int]:
    """Go's net.SplitHostPort, plus a host alone when there is a default port.

    `host:port`, `[v6]:port`, `:port` (the default host); `host` and `[v6]` only with a default
    port. An unbracketed IPv6 literal is refused: `::1:8080` could mean two things.
    """
    port_text: str | None
    if text.startswith("["):
        inside, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise TunnelConfigError(f"invalid address {text!r}: expected [IPv6]:port")
        host = _ipv6_literal(inside, text)
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise TunnelConfigError(f"invalid address {text!r}: an IPv6 address goes in brackets, e.g. [::1]:8080")
    elif ":" in text:
        host, _, port_text = text.partition(":")
        host = _checked_host(host, text) or default_host
    else:
        host, port_text = _checked_host(text, text), None
    if port_text is None:
        if default_port is None:
            raise TunnelConfigError(f"invalid address {text!r}: host:port expected")
        return host, default_port
    if not port_text:
        raise TunnelConfigError(f"invalid address {text!r}: the port is empty")
    return host, _port_number(port_text, text)


def _port_number(port_text: str, text: str) -> int:
    if not (port_text.isascii() and port_text.isdigit()):
        raise TunnelConfigError(f"invalid port in {_shown(text)!r}")
    if len(port_text) > 6:  # no need to turn a thousand digits into an int to know it is no port
        raise TunnelConfigError(f"invalid port {_shown(port_text, 16)}: must be 1-65535")
    return int(port_text)


def _checked_host(host: str, text: str) -> str:
    """A host name or IPv4 address in ASCII (an IDN goes in its punycode form), labels of 1-63 characters.

    Anything else could not be dialled, bound or sent as a Host header (and some of it would
    only fail deep inside the resolver).
    """
    if not host:
        return host
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise TunnelConfigError(f"invalid host in {_shown(text)!r}")
    try:
        host.encode("idna")
    except UnicodeError:
        raise TunnelConfigError(
            f"invalid host in {_shown(text)!r}: each dot-separated label is 1-63 characters"
        ) from None
    return host


def _ipv6_literal(host: str, text: str) -> str:
    address, percent, zone = host.partition("%")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise TunnelConfigError(f"invalid IPv6 address in {_shown(text)!r}") from None
    if percent and not _ZONE.fullmatch(zone):
        raise TunnelConfigError(f"invalid IPv6 zone in {_shown(text)!r}")
    return host


def _check_port(port: int, *, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise TunnelConfigError(f"invalid port {port}: must be 1-65535")
