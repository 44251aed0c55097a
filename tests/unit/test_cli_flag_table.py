"""Every flag of ngrok 3's `http`, `tcp` and `tls` (agent/cli.mdx, as of 3.39): each one parses, and
becomes its definition key, is accepted as a cloud session setting, or is refused with the reason.

NGROK_FLAGS is copied from ngrok's docs, not from our table, so a flag we lose or never had fails
here. EXAMPLES says, flag by flag, what it must do.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from agentapi.cli.errors import AgentError
from agentapi.cli.flags import ENDPOINT_FLAGS, flags_of
from agentapi.cli.tunnels import requested_tunnels
from agentapi.config_file import AgentConfig
from agentapi.engine import tunnel_spec
from agentapi.engine.tunnel_spec import TunnelConfigError, parse_definition
from agentapi.management.commands.agent import Command
from tests.support.certificates import make_certificate

# `ngrok http --help` etc. (agent/cli.mdx, "Flags" of each command), less --config (every command's).
NGROK_FLAGS = {
    "http": """app-protocol authtoken basic-auth binding cidr-allow cidr-deny circuit-breaker compression
        description domain host-header hostname inspect metadata mutual-tls-cas name oauth oauth-allow-domain
        oauth-allow-email oauth-client-id oauth-client-secret oauth-scope oidc oidc-client-id oidc-client-secret
        oidc-scope policy-file pooling-enabled proxy-proto region request-header-add request-header-remove
        response-header-add response-header-remove scheme subdomain traffic-policy-file traffic-policy-url
        ua-filter-allow ua-filter-deny upstream-protocol upstream-proxy-protocol upstream-tls-verify
        upstream-tls-verify-cas url verify-webhook verify-webhook-secret websocket-tcp-converter""",
    "tcp": """authtoken binding cidr-allow cidr-deny description metadata name policy-file pooling-enabled
        proxy-proto region remote-addr traffic-policy-file traffic-policy-url upstream-proxy-protocol url""",
    "tls": """authtoken binding cidr-allow cidr-deny crt description domain hostname key metadata mutual-tls-cas
        name policy-file pooling-enabled proxy-proto region subdomain terminate-at traffic-policy-file
        traffic-policy-url upstream-proxy-protocol upstream-tls-verify upstream-tls-verify-cas url""",
}
# Spellings ngrok 3.5 renamed and still takes (agent/changelog.mdx 3.5.0).
OLD_NAMES = {"http": {"verify-upstream-tls", "upstream-ca-path"}, "tls": {"verify-upstream-tls", "upstream-ca-path"}}

POLICY = "on_http_request:\n  - actions:\n      - type: deny\n"
TCP_POLICY = "on_tcp_connect:\n  - actions:\n      - type: deny\n"


@dataclass(frozen=True)
class Key:
    """The flag puts these keys (a subset of the definition) in."""

    keys: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    """The flag is refused; the message starts with the flag and says this."""

    says: str


@dataclass(frozen=True)
class Session:
    """A cloud session setting: accepted, named in the "ignoring cloud-only settings" line."""


CLOUD = "ngrok's cloud"
EXAMPLES: dict[str, tuple[list[str], Key | Refused | Session]] = {
    "name": (["--name", "web"], Key({"name": "web"})),
    "url": (["--url", "{url}"], Key({})),  # checked per protocol below
    "domain": (["--domain", "127.0.0.1:9443"], Key({"url": "127.0.0.1:9443"})),
    "hostname": (["--hostname", "127.0.0.1:9443"], Key({"url": "127.0.0.1:9443"})),
    "remote-addr": (["--remote-addr", "127.0.0.1:2222"], Key({"remote_addr": "127.0.0.1:2222"})),
    "subdomain": (["--subdomain", "foo"], Key({"subdomain": "foo"})),
    "binding": (["--binding", "public"], Key({"bindings": ["public"]})),
    "pooling-enabled": (["--pooling-enabled"], Key({"pooling_enabled": True})),
    "description": (["--description", "our app"], Key({"description": "our app"})),
    "metadata": (["--metadata", '{"id": 1}'], Key({"metadata": '{"id": 1}'})),
    "traffic-policy-file": (["--traffic-policy-file", "{policy}"], Key({"traffic_policy": "{policy_text}"})),
    "policy-file": (["--policy-file", "{policy}"], Key({"traffic_policy": "{policy_text}"})),
    "traffic-policy-url": (["--traffic-policy-url", "{policy_url}"], Key({"traffic_policy": "{policy_text}"})),
    "cidr-allow": (
        ["--cidr-allow", "10.0.0.0/8,192.0.2.0/24"],
        Key({"ip_restriction": {"allow_cidrs": ["10.0.0.0/8", "192.0.2.0/24"], "deny_cidrs": []}}),
    ),
    "cidr-deny": (
        ["--cidr-deny", "10.1.0.0/16"],
        Key({"ip_restriction": {"allow_cidrs": [], "deny_cidrs": ["10.1.0.0/16"]}}),
    ),
    "upstream-proxy-protocol": (["--upstream-proxy-protocol", "2"], Key({"proxy_protocol": "2"})),
    "proxy-proto": (["--proxy-proto", "1"], Key({"proxy_protocol": "1"})),
    "authtoken": (["--authtoken", "t0ken"], Session()),
    "region": (["--region", "eu"], Session()),
    "inspect": (["--inspect=false"], Key({"inspect": False})),
    "host-header": (["--host-header", "rewrite"], Key({"host_header": "rewrite"})),
    "scheme": (["--scheme", "https", "--scheme", "http"], Key({"schemes": ["https", "http"]})),
    "basic-auth": (["--basic-auth", "ann:password1"], Key({"basic_auth": ["ann:password1"]})),
    "circuit-breaker": (["--circuit-breaker", "0.5"], Key({"circuit_breaker": 0.5})),
    "compression": (["--compression"], Key({"compression": True})),
    "request-header-add": (
        ["--request-header-add", "X-Env: prod, eu"],
        Key({"request_header": {"add": ["X-Env: prod, eu"], "remove": []}}),
    ),
    "request-header-remove": (
        ["--request-header-remove", "Cookie,Referer"],
        Key({"request_header": {"add": [], "remove": ["Cookie", "Referer"]}}),
    ),
    "response-header-add": (
        ["--response-header-add", "X-Frame-Options: DENY"],
        Key({"response_header": {"add": ["X-Frame-Options: DENY"], "remove": []}}),
    ),
    "response-header-remove": (
        ["--response-header-remove", "Server"],
        Key({"response_header": {"add": [], "remove": ["Server"]}}),
    ),
    "ua-filter-allow": (
        ["--ua-filter-allow", "curl/.*"],
        Key({"user_agent_filter": {"allow": ["curl/.*"], "deny": []}}),
    ),
    "ua-filter-deny": (["--ua-filter-deny", "bot"], Key({"user_agent_filter": {"allow": [], "deny": ["bot"]}})),
    # ngrok's verify-webhook action needs the secret: the two flags go together.
    "verify-webhook": (
        ["--verify-webhook", "github", "--verify-webhook-secret", "s3cret"],
        Key({"verify_webhook": {"provider": "github", "secret": "s3cret"}}),
    ),
    "verify-webhook-secret": (
        ["--verify-webhook", "github", "--verify-webhook-secret", "s3cret"],
        Key({"verify_webhook": {"provider": "github", "secret": "s3cret"}}),
    ),
    "upstream-protocol": (["--upstream-protocol", "http2"], Refused("h2c (HTTP/2 without TLS) to the local service")),
    "app-protocol": (["--app-protocol", "http2"], Refused("h2c (HTTP/2 without TLS) to the local service")),
    "websocket-tcp-converter": (["--websocket-tcp-converter"], Refused("WebSocket-to-TCP converter is not supported")),
    "upstream-tls-verify": (["--upstream-tls-verify"], Key({"upstream_tls_verify": True})),
    "verify-upstream-tls": (["--verify-upstream-tls=true"], Key({"upstream_tls_verify": True})),
    "upstream-tls-verify-cas": (
        ["--upstream-tls-verify-cas", "{ca}"],
        Key({"upstream_tls_verify": True, "upstream_tls_verify_cas": "{ca}"}),
    ),
    "upstream-ca-path": (
        ["--upstream-ca-path", "{ca}"],
        Key({"upstream_tls_verify_cas": "{ca}"}),
    ),
    "mutual-tls-cas": (["--mutual-tls-cas", "ca.pem"], Refused(CLOUD)),
    **{
        name: ([f"--{name}", "x"], Refused(CLOUD))
        for name in (
            "oauth",
            "oauth-allow-domain",
            "oauth-allow-email",
            "oauth-client-id",
            "oauth-client-secret",
            "oauth-scope",
            "oidc",
            "oidc-client-id",
            "oidc-client-secret",
            "oidc-scope",
        )
    },
    "crt": (["--crt", "{crt}", "--key", "{key}"], Key({"crt": "{crt}", "key": "{key}"})),
    "key": (["--key", "{key}", "--crt", "{crt}"], Key({"crt": "{crt}", "key": "{key}"})),
    "terminate-at": (["--terminate-at", "upstream"], Key({"terminate_at": "upstream"})),
}
URLS: dict[str, tuple[str, dict[str, Any]]] = {
    "http": ("https://127.0.0.1:9443", {"url": "https://127.0.0.1:9443", "schemes": ["https"]}),
    "tcp": ("tcp://127.0.0.1:2222", {"remote_addr": "tcp://127.0.0.1:2222"}),
    "tls": ("tls://127.0.0.1:9443", {"url": "tls://127.0.0.1:9443"}),
}
# Keys the engine helper is adding to tunnel_spec (issue 10); until then the engine names them.
PENDING_ENGINE_KEYS = {"proxy_protocol", "upstream_tls_verify", "upstream_tls_verify_cas"}
# Flags that parse into their keys, which the engine then refuses with its reason.
ENGINE_REFUSES = {
    ("tls", name): "never speaks TLS to a tls tunnel's upstream"
    for name in ("upstream-tls-verify", "verify-upstream-tls", "upstream-tls-verify-cas", "upstream-ca-path")
}
# The certificate checks need an https local service.
HTTPS_UPSTREAM_FLAGS = {"upstream-tls-verify", "verify-upstream-tls", "upstream-tls-verify-cas", "upstream-ca-path"}


class _PolicyServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (POLICY if self.path == "/http.yml" else TCP_POLICY).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def policy_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PolicyServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@functools.cache
def _parser() -> argparse.ArgumentParser:
    return Command().create_parser("manage.py", "agent")


def parse(*argv: str) -> dict[str, Any]:
    return vars(_parser().parse_args(list(argv)))


def build(*argv: str) -> tuple[dict[str, Any], list[str]]:
    options = parse(*argv)
    requested = requested_tunnels(options["action"], options, AgentConfig())
    [definition] = requested.definitions
    return definition, requested.ignored


def every_flag() -> list[tuple[str, str]]:
    return [(proto, name) for proto, names in NGROK_FLAGS.items() for name in names.split()] + [
        (proto, name) for proto, names in OLD_NAMES.items() for name in sorted(names)
    ]


def test_every_ngrok_flag_is_in_our_table_and_ours_adds_none() -> None:
    for proto, names in NGROK_FLAGS.items():
        ours = {flag.name[2:] for flag in flags_of(proto)}
        assert ours == set(names.split()) | OLD_NAMES.get(proto, set()), proto


def test_every_flag_has_an_example_here() -> None:
    assert {name for _, name in every_flag()} <= set(EXAMPLES)
    assert {flag.name[2:] for flag in ENDPOINT_FLAGS} <= set(EXAMPLES)


def _filled(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in places.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, dict):
        return {key: _filled(item, places) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, places) for item in value]
    return value


@pytest.mark.parametrize(("proto", "name"), every_flag())
def test_each_flag_becomes_its_key_is_accepted_as_cloud_only_or_is_refused_with_the_reason(
    proto: str, name: str, tmp_path: Path, policy_server: str, certificate: tuple[Path, Path]
) -> None:
    policy_text = TCP_POLICY if proto != "http" else POLICY
    (tmp_path / "policy.yml").write_text(policy_text)
    places = {
        "policy": str(tmp_path / "policy.yml"),
        "policy_text": policy_text,
        "policy_url": f"{policy_server}/{proto}.yml",
        "crt": str(certificate[0]),
        "key": str(certificate[1]),
        "ca": str(certificate[0]),
        "url": URLS[proto][0],
    }
    args, expected = EXAMPLES[name]
    addr = "https://localhost:8443" if proto == "http" and name in HTTPS_UPSTREAM_FLAGS else "8443"
    argv = [proto, addr, *_filled(args, places)]
    if isinstance(expected, Refused):
        with pytest.raises(AgentError) as caught:
            build(*argv)
        assert str(caught.value).startswith(f"--{name}: ") or str(caught.value).startswith("--upstream-protocol")
        assert expected.says in str(caught.value)
        return
    definition, ignored = build(*argv)
    if isinstance(expected, Session):
        assert ignored == [f"--{name}"]
        assert set(definition) == {"proto", "addr", "name", *(["inspect"] if proto == "http" else [])}
        return
    keys = URLS[proto][1] if name == "url" else _filled(expected.keys, places)
    assert {key: definition.get(key) for key in keys} == keys
    _the_engine_takes(definition, proto, refusal=ENGINE_REFUSES.get((proto, name), ""))


def _the_engine_takes(definition: dict[str, Any], proto: str, *, refusal: str) -> None:
    """The definition starts; or the engine refuses it with `refusal`; or, for a key the engine does
    not know yet, it is refused naming that key."""
    pending = sorted(key for key in PENDING_ENGINE_KEYS & set(definition) if key not in tunnel_spec._KEYS[proto])
    if pending or refusal:
        with pytest.raises(TunnelConfigError) as caught:
            parse_definition(definition, name="t", public_host="127.0.0.1")
        assert (pending[0] if pending else refusal) in str(caught.value)
        return
    specs = parse_definition(definition, name="t", public_host="127.0.0.1")
    for spec in specs:
        if spec.policy is not None:
            spec.policy.close()


@pytest.mark.parametrize(
    ("proto", "name"), [(proto, flag.name) for proto in NGROK_FLAGS for flag in flags_of(proto) if flag.kind == "bool"]
)
def test_every_bool_flag_takes_gos_syntax(proto: str, name: str) -> None:
    dest = name[2:].replace("-", "_")
    dest = {"verify_upstream_tls": "upstream_tls_verify"}.get(dest, dest)
    for spelling, value in [
        ([name], True),
        ([f"{name}=false"], False),
        ([f"{name}=0"], False),
        ([f"{name}=True"], True),
        ([name, "false"], False),  # ours: this agent's older command line took the word apart
    ]:
        options = parse(proto, *spelling, "8080")
        assert (options[dest], options["addr"]) == (value, "8080"), spelling
    # A lone bool flag never swallows the address after it (pflag).
    assert parse(proto, name, "8080")["addr"] == "8080"
    with pytest.raises(CommandError, match="invalid boolean value 'maybe'"):
        parse(proto, f"{name}=maybe", "8080")


def test_inspect_false_is_a_tunnel_without_captures() -> None:
    definition, _ = build("http", "--inspect=false", "8080")
    assert definition["inspect"] is False
    assert build("http", "8080")[0]["inspect"] is True


@pytest.mark.parametrize(
    ("proto", "url", "says"),
    [
        ("http", "tcp://127.0.0.1:2222", "the URL of an http endpoint starts with http:// or https://"),
        ("tcp", "https://example.com", "the URL of an tcp endpoint starts with tcp://"),
        ("tls", "http://example.com", "the URL of an tls endpoint starts with tls://"),
    ],
)
def test_a_url_whose_scheme_does_not_fit_the_command_is_refused(proto: str, url: str, says: str) -> None:
    with pytest.raises(AgentError, match=says):
        build(proto, "8080", "--url", url)


@pytest.mark.parametrize(
    ("proto", "url", "keys"),
    [
        ("http", "https://", {"url": "https://", "schemes": ["https"]}),
        ("http", "http://", {"url": "http://", "schemes": ["http"]}),
        ("tcp", "tcp://", {"remote_addr": "tcp://"}),
        ("tls", "tls://", {"url": "tls://"}),
    ],
)
def test_a_scheme_alone_asks_for_a_random_address_with_that_scheme(proto: str, url: str, keys: dict) -> None:
    definition, _ = build(proto, "8080", "--url", url)
    assert {key: definition.get(key) for key in keys} == keys
    [spec, *_] = parse_definition(definition, name="t", public_host="127.0.0.1")
    assert spec.listen_port == 0


def test_an_empty_proxy_protocol_is_none_and_others_are_refused() -> None:
    assert "proxy_protocol" not in build("tcp", "22", "--upstream-proxy-protocol", "")[0]
    with pytest.raises(AgentError, match="the PROXY protocol version is 1 or 2"):
        build("tcp", "22", "--upstream-proxy-protocol", "3")


def test_http1_is_the_upstream_protocol_there_is() -> None:
    assert "upstream_protocol" not in build("http", "80", "--upstream-protocol", "http1")[0]


def test_terminate_at_edge_says_the_edge_is_ngroks_cloud() -> None:
    with pytest.raises(AgentError, match="--terminate-at edge: edge means ngrok's cloud terminates TLS"):
        build("tls", "443", "--terminate-at", "edge")


def test_websocket_tcp_converter_false_asks_for_nothing() -> None:
    assert "websocket_tcp_converter" not in build("http", "80", "--websocket-tcp-converter=false")[0]


def test_a_ca_file_with_verification_turned_off_is_a_contradiction() -> None:
    with pytest.raises(AgentError, match="the CA file is for verifying"):
        build("http", "https://localhost:8443", "--upstream-tls-verify=false", "--upstream-tls-verify-cas", "ca.pem")


def test_subdomain_is_kept_and_the_operator_told_it_means_nothing_here() -> None:
    options = parse("http", "80", "--subdomain", "foo")
    requested = requested_tunnels("http", options, AgentConfig())
    assert requested.definitions[0]["subdomain"] == "foo"
    assert requested.notices == [
        "--subdomain foo: kept in the definition; a local agent has no ngrok subdomains, "
        "the endpoint listens on AGENT_PUBLIC_HOST"
    ]


def test_a_file_url_is_the_address_for_the_built_in_file_server() -> None:
    assert build("http", "file:///srv/site")[0]["addr"] == "file:///srv/site"


@pytest.mark.parametrize("argv", [["--config", "a.yml,b.yml"], ["--config", "a.yml", "--config", "b.yml"]])
def test_config_takes_several_files_as_a_go_string_slice(argv: list[str]) -> None:
    from agentapi.cli.global_flags import config_paths

    assert config_paths(parse("start", "--none", *argv)) == [Path("a.yml"), Path("b.yml")]


def test_the_session_metadata_flag_is_accepted_as_cloud_only() -> None:
    from agentapi.cli.global_flags import session_flags_given

    assert session_flags_given(parse("--metadata", "device-1", "start", "--none")) == ["--metadata"]
    assert session_flags_given(parse("start", "--none", "--metadata", "device-1")) == ["--metadata"]
    # On http/tcp/tls, --metadata is the endpoint's own (ngrok's subcommand flag shadows the root's).
    assert build("http", "80", "--metadata", "m")[0]["metadata"] == "m"


def test_docs_command_line_lists_every_flag_and_config_key() -> None:
    from agentapi.config_file import CLOUD_KEYS, LOCAL_KEYS

    docs = (Path(__file__).resolve().parents[2] / "docs" / "command-line.md").read_text()
    missing = [flag.name for flag in ENDPOINT_FLAGS if f"`{flag.name}`" not in docs]
    missing += [key for key in sorted(LOCAL_KEYS | CLOUD_KEYS) if f"`{key}`" not in docs]
    assert missing == []
