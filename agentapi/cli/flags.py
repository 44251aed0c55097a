"""Every flag of ngrok 3's `http`, `tcp` and `tls` (`agent/cli.mdx`), and what each does here.

`ENDPOINT_FLAGS` is the one table: the parser is built from it (`add_endpoint_flags`), the tunnel
definition is built from it (`flags_definition`), docs/command-line.md lists it and
tests/unit/test_cli_flag_table.py walks it. Each flag does one of three things; none is ignored:
- it becomes a tunnel definition key (the config file's name for it, `agent/config/v2.mdx`:
  `--host-header` -> `host_header`), which tunnel_spec checks and runs; the flags ngrok 3.36
  deprecated in favour of Traffic Policy become the deprecated keys policy/legacy.py turns into
  rules (`agent/changelog.mdx` 3.36.0: they still work, hidden from `--help`);
- it is a cloud session setting (`--authtoken`, `--region`): accepted and named in the log line
  "ignoring cloud-only settings";
- it is refused with the reason (`--oauth*`, `--oidc*`, `--mutual-tls-cas`: ngrok's cloud;
  `--upstream-protocol http2`: no h2c to the local service; `--websocket-tcp-converter`).
Rules:
- Flags after ngrok's Go syntax (go_flags.py): bool flags take `=false`; list flags repeat and
  split on commas (`--request-header-add` does not split: a header value may hold commas).
- `--url` (`--domain`, `--hostname`, tcp's `--remote-addr`: its deprecated names) takes
  `https://host[:port]`, `http://...`, `tcp://host:port` (tcp), `tls://host[:port]` (tls), a host
  alone, or a scheme alone for a random port. The scheme must fit the command (an `http` endpoint
  is `http://` or `https://`). `https://` gives the https scheme; no scheme, this agent's default
  for `agent http`: http (ours: the agent's certificate is self-signed). A `.internal` host or
  `--binding internal` makes an internal endpoint (`endpoints/internal-endpoints.mdx`).
- `--upstream-proxy-protocol` (`--proxy-proto`) is 1 or 2 (`proxy_protocol`, a PROXY header to the
  local service); `--upstream-tls-verify[-cas]` verify an https/tls service's certificate
  (`upstream_tls_verify`, `upstream_tls_verify_cas`; a CA file implies verifying).
- `--subdomain` is kept in the definition (as the config key is) and logged: a local agent has no
  ngrok subdomains; the listener binds AGENT_PUBLIC_HOST.
Every refusal is an AgentError whose message starts with the flag.
"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentapi.config_file import ConfigFileError, read_policy_file
from agentapi.engine.policy.document import MAX_POLICY_BYTES
from agentapi.engine.policy.legacy import REFUSED_KEYS

from .errors import AgentError
from .go_flags import GoBool, split_list

PROTOS = ("http", "tcp", "tls")
POLICY_URL_TIMEOUT = 10.0  # seconds to fetch --traffic-policy-url
DEFAULT_NAME = "command_line"

NO_H2C = (
    "h2c (HTTP/2 without TLS) to the local service is not supported by this agent: its proxy speaks "
    "HTTP/1.1 to the upstream; leave it out or give http1"
)
NO_WEBSOCKET_TCP = (
    "the WebSocket-to-TCP converter is not supported by this agent (it turns WebSocket messages into a "
    "TCP stream at ngrok's edge); expose the TCP service with `agent tcp` instead"
)
NO_EDGE = "edge means ngrok's cloud terminates TLS; here give agent (with --crt and --key) or upstream"


@dataclass
class Built:
    """A definition being built from flags: the keys, and what the operator should read in the log."""

    proto: str
    definition: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # cloud session flags given (accepted)


Apply = Callable[[Built, Any], None]


@dataclass(frozen=True)
class Flag:
    """One flag of ngrok's `http`/`tcp`/`tls`.

    kind: "string", "strings" (repeats), "list" (repeats, comma-split), "bool" (Go bool), "number".
    same_as: another flag's name: a deprecated spelling that shares its value (hidden).
    does: what the flag does here, for `--help` (when shown) and docs/command-line.md.
    """

    name: str
    protos: tuple[str, ...]
    kind: str
    does: str
    apply: Apply | None = None
    refused: str = ""  # refused with this reason (a bool flag only when true)
    session: bool = False  # a cloud session setting: accepted, logged as ignored
    hidden_on: tuple[str, ...] = ()  # ngrok hides its deprecated flags from --help (3.36.0)
    same_as: str = ""
    choices: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return (self.same_as or self.name)[2:].replace("-", "_")

    def hidden(self, proto: str) -> bool:
        return bool(self.same_as) or proto in self.hidden_on


# --- what each flag puts in the definition -------------------------------------------------------


def _key(key: str) -> Apply:
    def apply(built: Built, value: Any) -> None:
        built.definition[key] = value

    return apply


def _true_key(key: str) -> Apply:
    def apply(built: Built, value: Any) -> None:
        if value:
            built.definition[key] = True

    return apply


def _pair(key: str, half: str, other: str, *, split: bool = True) -> Apply:
    """One half of a two-list key (`ip_restriction.allow_cidrs` beside `deny_cidrs`)."""

    def apply(built: Built, value: Any) -> None:
        items = split_list(value) if split else list(value)
        if items:
            built.definition.setdefault(key, {half: [], other: []})[half] = items

    return apply


def _policy_file(built: Built, value: Any) -> None:
    try:
        built.definition["traffic_policy"] = read_policy_file(Path(value).expanduser(), "--traffic-policy-file")
    except ConfigFileError as error:
        raise AgentError(str(error)) from None


def _policy_url(built: Built, value: Any) -> None:
    if "traffic_policy" in built.definition:
        raise AgentError("give --traffic-policy-file or --traffic-policy-url, not both")
    built.definition["traffic_policy"] = fetch_policy(value)


def _binding(built: Built, value: Any) -> None:
    built.definition["bindings"] = [value]


def _proxy_protocol(built: Built, value: Any) -> None:
    if value in ("", None):
        return  # ngrok: "empty if not used"
    if value not in ("1", "2"):
        raise AgentError(f"--upstream-proxy-protocol {value!r}: the PROXY protocol version is 1 or 2")
    built.definition["proxy_protocol"] = value


def _upstream_protocol(built: Built, value: Any) -> None:
    if value in ("", "http1"):
        return  # the default
    if value == "http2":
        raise AgentError(f"--upstream-protocol http2: {NO_H2C}")
    raise AgentError(f"--upstream-protocol {value!r}: http1 or http2")


def _tls_verify(built: Built, value: Any) -> None:
    built.definition["upstream_tls_verify"] = bool(value)


def _tls_verify_cas(built: Built, value: Any) -> None:
    if built.definition.get("upstream_tls_verify") is False:
        raise AgentError("--upstream-tls-verify-cas: the CA file is for verifying; drop --upstream-tls-verify=false")
    built.definition["upstream_tls_verify"] = True
    built.definition["upstream_tls_verify_cas"] = str(Path(value).expanduser())


def _webhook(built: Built, value: Any) -> None:
    built.definition.setdefault("verify_webhook", {})["provider"] = value


def _webhook_secret(built: Built, value: Any) -> None:
    if "verify_webhook" not in built.definition:
        raise AgentError("--verify-webhook-secret needs --verify-webhook PROVIDER")
    built.definition["verify_webhook"]["secret"] = value


def _subdomain(built: Built, value: Any) -> None:
    built.definition["subdomain"] = value
    built.notices.append(
        f"--subdomain {value}: kept in the definition; a local agent has no ngrok subdomains, "
        "the endpoint listens on AGENT_PUBLIC_HOST"
    )


def _terminate_at(built: Built, value: Any) -> None:
    if value == "edge":
        raise AgentError(f"--terminate-at edge: {NO_EDGE}")
    built.definition["terminate_at"] = value


def _websocket_tcp(built: Built, value: Any) -> None:
    if value:
        raise AgentError(f"--websocket-tcp-converter: {NO_WEBSOCKET_TCP}")


def _refusal(key: str) -> str:
    return REFUSED_KEYS[key]


HTTP, TCP, TLS = ("http",), ("tcp",), ("tls",)
ALL = PROTOS
_DEPRECATED = "deprecated in ngrok (use Traffic Policy); "

ENDPOINT_FLAGS: tuple[Flag, ...] = (
    Flag("--name", ALL, "string", f"the endpoint's name (default {DEFAULT_NAME})"),
    Flag("--url", ALL, "string", "the endpoint's URL: [scheme://]host[:port], or a scheme alone for a random port"),
    Flag("--domain", ("http", "tls"), "string", "old name of --url", same_as="--url"),
    Flag("--hostname", ("http", "tls"), "string", "old name of --url", same_as="--url"),
    Flag("--remote-addr", TCP, "string", "old name of --url: the host:port to listen on", same_as="--url"),
    Flag(
        "--subdomain",
        ("http", "tls"),
        "string",
        "kept in the definition and logged: no ngrok subdomains here",
        _subdomain,
        hidden_on=ALL,
    ),
    Flag("--binding", ALL, "string", "public or internal (kubernetes needs ngrok's cloud)", _binding),
    Flag(
        "--pooling-enabled",
        ALL,
        "bool",
        "several endpoints on one URL take its connections in turn",
        _true_key("pooling_enabled"),
    ),
    Flag("--description", ALL, "string", "kept with the endpoint (description)", _key("description")),
    Flag("--metadata", ALL, "string", "kept with the endpoint, shown by the API (metadata)", _key("metadata")),
    Flag(
        "--traffic-policy-file", ALL, "string", "a Traffic Policy file (YAML or JSON) run by the endpoint", _policy_file
    ),
    Flag("--policy-file", ALL, "string", "old name of --traffic-policy-file", same_as="--traffic-policy-file"),
    Flag("--traffic-policy-url", ALL, "string", "a Traffic Policy fetched from an http(s) URL at start", _policy_url),
    Flag(
        "--cidr-allow",
        ALL,
        "list",
        "only these CIDRs may connect (restrict-ips)",
        _pair("ip_restriction", "allow_cidrs", "deny_cidrs"),
        hidden_on=HTTP,
    ),
    Flag(
        "--cidr-deny",
        ALL,
        "list",
        "these CIDRs may not connect (restrict-ips)",
        _pair("ip_restriction", "deny_cidrs", "allow_cidrs"),
        hidden_on=HTTP,
    ),
    Flag(
        "--upstream-proxy-protocol",
        ALL,
        "string",
        "send a PROXY protocol header (1 or 2) to the local service",
        _proxy_protocol,
    ),
    Flag("--proxy-proto", ALL, "string", "old name of --upstream-proxy-protocol", same_as="--upstream-proxy-protocol"),
    Flag("--authtoken", ALL, "string", "accepted and logged: this agent needs no account", session=True),
    Flag("--region", ALL, "string", "accepted and logged: there is no region here", session=True, hidden_on=ALL),
    # http
    Flag("--inspect", HTTP, "bool", "capture requests for the inspector and the API (default true)", _key("inspect")),
    Flag(
        "--host-header",
        HTTP,
        "string",
        "rewrite, preserve or a literal Host sent upstream",
        _key("host_header"),
        hidden_on=ALL,
    ),
    Flag(
        "--scheme",
        HTTP,
        "strings",
        "http and/or https public schemes",
        _key("schemes"),
        hidden_on=ALL,
        choices=("http", "https"),
    ),
    Flag("--basic-auth", HTTP, "strings", _DEPRECATED + "basic-auth", _key("basic_auth"), hidden_on=ALL),
    Flag("--circuit-breaker", HTTP, "number", _DEPRECATED + "circuit-breaker", _key("circuit_breaker"), hidden_on=ALL),
    Flag("--compression", HTTP, "bool", _DEPRECATED + "compress-response", _true_key("compression"), hidden_on=ALL),
    Flag(
        "--request-header-add",
        HTTP,
        "strings",
        _DEPRECATED + "add-headers on requests",
        _pair("request_header", "add", "remove", split=False),
        hidden_on=ALL,
    ),
    Flag(
        "--request-header-remove",
        HTTP,
        "list",
        _DEPRECATED + "remove-headers on requests",
        _pair("request_header", "remove", "add"),
        hidden_on=ALL,
    ),
    Flag(
        "--response-header-add",
        HTTP,
        "strings",
        _DEPRECATED + "add-headers on responses",
        _pair("response_header", "add", "remove", split=False),
        hidden_on=ALL,
    ),
    Flag(
        "--response-header-remove",
        HTTP,
        "list",
        _DEPRECATED + "remove-headers on responses",
        _pair("response_header", "remove", "add"),
        hidden_on=ALL,
    ),
    Flag(
        "--ua-filter-allow",
        HTTP,
        "list",
        _DEPRECATED + "deny requests whose User-Agent matches none of these",
        _pair("user_agent_filter", "allow", "deny"),
        hidden_on=ALL,
    ),
    Flag(
        "--ua-filter-deny",
        HTTP,
        "list",
        _DEPRECATED + "deny requests whose User-Agent matches these",
        _pair("user_agent_filter", "deny", "allow"),
        hidden_on=ALL,
    ),
    Flag("--verify-webhook", HTTP, "string", _DEPRECATED + "verify-webhook (provider)", _webhook, hidden_on=ALL),
    Flag(
        "--verify-webhook-secret",
        HTTP,
        "string",
        _DEPRECATED + "verify-webhook (secret)",
        _webhook_secret,
        hidden_on=ALL,
    ),
    Flag("--upstream-protocol", HTTP, "string", "http1; http2 (h2c) is refused", _upstream_protocol, hidden_on=ALL),
    Flag("--app-protocol", HTTP, "string", "old name of --upstream-protocol", same_as="--upstream-protocol"),
    Flag(
        "--websocket-tcp-converter",
        HTTP,
        "bool",
        "refused when true: " + NO_WEBSOCKET_TCP,
        _websocket_tcp,
        hidden_on=ALL,
    ),
    Flag(
        "--upstream-tls-verify",
        ("http", "tls"),
        "bool",
        "verify the https/tls local service's certificate",
        _tls_verify,
    ),
    Flag(
        "--verify-upstream-tls",
        ("http", "tls"),
        "bool",
        "old name of --upstream-tls-verify",
        same_as="--upstream-tls-verify",
    ),
    Flag(
        "--upstream-tls-verify-cas", ("http", "tls"), "string", "verify it against this CA file (PEM)", _tls_verify_cas
    ),
    Flag(
        "--upstream-ca-path",
        ("http", "tls"),
        "string",
        "old name of --upstream-tls-verify-cas",
        same_as="--upstream-tls-verify-cas",
    ),
    Flag(
        "--mutual-tls-cas",
        ("http", "tls"),
        "string",
        "refused: " + _refusal("mutual_tls_cas"),
        refused=_refusal("mutual_tls_cas"),
        hidden_on=HTTP,
    ),
    *(
        Flag(name, HTTP, "string", "refused: " + _refusal(key), refused=_refusal(key), hidden_on=ALL)
        for key, names in (
            (
                "oauth",
                (
                    "--oauth",
                    "--oauth-allow-domain",
                    "--oauth-allow-email",
                    "--oauth-client-id",
                    "--oauth-client-secret",
                    "--oauth-scope",
                ),
            ),
            ("oidc", ("--oidc", "--oidc-client-id", "--oidc-client-secret", "--oidc-scope")),
        )
        for name in names
    ),
    # tls
    Flag("--crt", TLS, "string", "PEM certificate: the agent terminates TLS (with --key)", _key("crt")),
    Flag("--key", TLS, "string", "PEM private key for --crt", _key("key")),
    Flag(
        "--terminate-at",
        TLS,
        "string",
        "agent or upstream (edge is ngrok's cloud: refused)",
        _terminate_at,
        hidden_on=ALL,
    ),
)

_BY_NAME = {flag.name: flag for flag in ENDPOINT_FLAGS}


def flags_of(proto: str) -> list[Flag]:
    """The flags of `agent PROTO`, in table order."""
    return [flag for flag in ENDPOINT_FLAGS if proto in flag.protos]


def add_endpoint_flags(parser: argparse.ArgumentParser, proto: str) -> None:
    """Add the flags of `agent PROTO` (http, tcp or tls) to its subcommand parser."""
    for flag in flags_of(proto):
        kwargs: dict[str, Any] = {"dest": flag.dest}
        kwargs["help"] = argparse.SUPPRESS if flag.hidden(proto) else flag.does
        if flag.kind == "bool":
            kwargs["action"] = GoBool
        elif flag.kind in ("strings", "list"):
            kwargs["action"] = "append"
        elif flag.kind == "number":
            kwargs["type"] = float
        if flag.choices:
            kwargs["choices"] = flag.choices
        if flag.name == "--binding":
            kwargs["choices"] = ("public", "internal", "kubernetes")
        if flag.name == "--name":
            kwargs["default"] = DEFAULT_NAME
        parser.add_argument(flag.name, **kwargs)


def flags_definition(proto: str, addr: str, options: Mapping[str, Any]) -> Built:
    """The tunnel definition `agent PROTO ADDR [flags]` stands for. Raises AgentError.

    `options` is argparse's namespace as a mapping (dests as in ENDPOINT_FLAGS).
    """
    built = Built(proto, {"proto": proto, "addr": addr, "name": options.get("name") or DEFAULT_NAME})
    for flag in flags_of(proto):
        if flag.same_as:
            continue  # its value is under the flag it is the old name of
        value = options.get(flag.dest)
        if value is None or value == []:
            continue
        if flag.refused and (flag.kind != "bool" or value):
            raise AgentError(f"{flag.name}: {flag.refused}")
        if flag.session:
            built.ignored.append(flag.name)
        elif flag.apply is not None:
            flag.apply(built, value)
    _listen_url(built, options.get("url"))
    if proto == "http":
        built.definition.setdefault("inspect", True)
    return built


def _listen_url(built: Built, url: str | None) -> None:
    """--url (and its old names): the scheme checked against the command, then the key it means."""
    if not url:
        return
    proto, definition = built.proto, built.definition
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower() if sep else ""
    allowed = ("http", "https") if proto == "http" else (proto,)
    if scheme and scheme not in allowed:
        raise AgentError(
            f"--url {url}: the URL of an {proto} endpoint starts with {' or '.join(a + '://' for a in allowed)}"
        )
    # A tcp URL is the listen address (remote_addr, as in the config file), unless it names an
    # internal endpoint.
    internal = "internal" in definition.get("bindings", []) or ".internal" in url.lower()
    definition["remote_addr" if proto == "tcp" and not internal else "url"] = url
    if proto == "http" and scheme == "https" and "schemes" not in definition:
        definition["schemes"] = ["https"]
    elif proto == "http" and scheme == "http" and "schemes" not in definition:
        definition["schemes"] = ["http"]


def fetch_policy(url: str) -> str:
    """--traffic-policy-url: the policy text at an http(s) URL. Raises AgentError."""
    if not url.lower().startswith(("http://", "https://")):
        raise AgentError(f"--traffic-policy-url {url!r}: an http:// or https:// URL is required")
    try:
        with urllib.request.urlopen(url, timeout=POLICY_URL_TIMEOUT) as response:  # the scheme is checked above
            body: bytes = response.read(MAX_POLICY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise AgentError(f"--traffic-policy-url {url}: cannot fetch the policy: {reason}") from None
    if len(body) > MAX_POLICY_BYTES:
        raise AgentError(f"--traffic-policy-url {url}: the policy is larger than {MAX_POLICY_BYTES // 1024} KiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise AgentError(f"--traffic-policy-url {url}: the policy is not UTF-8 text") from None


def flag_named(name: str) -> Flag:
    """The table's entry for `name` (`--inspect`). Raises KeyError."""
    return _BY_NAME[name]
