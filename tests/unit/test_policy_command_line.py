"""Traffic Policy on the command line and in config files: the flags and keys become the tunnel
definitions tunnel_spec loads (agentapi/management/commands/agent.py, agentapi/config_file.py)."""

from __future__ import annotations

import argparse
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentapi.config_file import AgentConfig, ConfigFileError, load_config
from agentapi.management.commands.agent import AgentError, Command, _requested_tunnels

POLICY = "on_http_request:\n  - actions:\n      - type: deny\n"


def command_line(*argv: str, config: AgentConfig | None = None) -> list[dict[str, Any]]:
    """The definitions `manage.py agent ARGV...` would start."""
    parser = Command().create_parser("manage.py", "agent")
    options = vars(parser.parse_args(list(argv)))
    return _requested_tunnels(options.get("action"), options, config or AgentConfig())


def definition(*argv: str) -> dict[str, Any]:
    [only] = command_line(*argv)
    return only


def refused(*argv: str) -> str:
    with pytest.raises(AgentError) as caught:
        command_line(*argv)
    return str(caught.value)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return path


@pytest.mark.parametrize("proto", ["http", "tcp", "tls"])
@pytest.mark.parametrize("flag", ["--traffic-policy-file", "--policy-file"])
def test_traffic_policy_file_is_read_into_the_definition(proto: str, flag: str, policy_file: Path) -> None:
    assert definition(proto, "8080", flag, str(policy_file))["traffic_policy"] == POLICY


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    assert refused("http", "8080", "--traffic-policy-file", str(missing)) == (
        f"--traffic-policy-file: {missing} does not exist"
    )


def test_a_policy_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"on_http_request: []\n# caf\xe9\n")
    assert refused("http", "8080", "--traffic-policy-file", str(path)).endswith("is not UTF-8 text")


class _PolicyServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = POLICY.encode() if self.path == "/policy.yml" else b"missing"
        self.send_response(200 if self.path == "/policy.yml" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def policy_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PolicyServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_traffic_policy_url_is_fetched_into_the_definition(policy_server: str) -> None:
    assert definition("http", "8080", "--traffic-policy-url", policy_server + "/policy.yml")["traffic_policy"] == POLICY


def test_a_policy_url_that_cannot_be_fetched_is_a_clear_error(policy_server: str) -> None:
    message = refused("http", "8080", "--traffic-policy-url", policy_server + "/gone.yml")
    assert message.startswith(f"--traffic-policy-url {policy_server}/gone.yml: cannot fetch the policy")
    assert refused("http", "8080", "--traffic-policy-url", "file:///etc/passwd").endswith(
        "an http:// or https:// URL is required"
    )


def test_a_policy_file_and_url_together_are_refused(policy_file: Path) -> None:
    assert refused(
        "http", "8080", "--traffic-policy-file", str(policy_file), "--traffic-policy-url", "http://127.0.0.1:1/p"
    ) == ("give --traffic-policy-file or --traffic-policy-url, not both")


def test_the_deprecated_http_flags_become_their_definition_keys() -> None:
    got = definition(
        "http",
        "8080",
        "--basic-auth",
        "ann:password1",
        "--request-header-add",
        "X-Env: prod, eu",
        "--request-header-remove",
        "Cookie,Referer",
        "--response-header-add",
        "X-Frame-Options: DENY",
        "--response-header-remove",
        "Server",
        "--cidr-allow",
        "10.0.0.0/8,192.0.2.0/24",
        "--cidr-deny",
        "10.1.0.0/16",
        "--compression",
        "--circuit-breaker",
        "0.5",
        "--verify-webhook",
        "github",
        "--verify-webhook-secret",
        "s3cret",
        "--ua-filter-allow",
        "(foo/(\\d)+.(\\d)+),(bar/(\\d)+.(\\d)+)",
        "--ua-filter-deny",
        "(buz/(\\d)+.(\\d)+)",
    )
    assert {key: value for key, value in got.items() if key not in ("proto", "addr", "name", "inspect")} == {
        "basic_auth": ["ann:password1"],
        # A header value may hold commas: --request-header-add is never split.
        "request_header": {"add": ["X-Env: prod, eu"], "remove": ["Cookie", "Referer"]},
        "response_header": {"add": ["X-Frame-Options: DENY"], "remove": ["Server"]},
        "ip_restriction": {"allow_cidrs": ["10.0.0.0/8", "192.0.2.0/24"], "deny_cidrs": ["10.1.0.0/16"]},
        "compression": True,
        "circuit_breaker": 0.5,
        "verify_webhook": {"provider": "github", "secret": "s3cret"},
        # ngrok's own example of these flags, split on the comma as Go's string-slice flag does.
        "user_agent_filter": {"allow": ["(foo/(\\d)+.(\\d)+)", "(bar/(\\d)+.(\\d)+)"], "deny": ["(buz/(\\d)+.(\\d)+)"]},
    }


def test_compression_false_is_no_compression() -> None:
    assert "compression" not in definition("http", "8080", "--compression=false")


@pytest.mark.parametrize("proto", ["tcp", "tls"])
def test_cidr_flags_work_on_tcp_and_tls(proto: str) -> None:
    got = definition(proto, "22", "--cidr-allow", "127.0.0.1/32")
    assert got["ip_restriction"] == {"allow_cidrs": ["127.0.0.1/32"], "deny_cidrs": []}


def test_a_webhook_secret_without_a_provider_is_refused() -> None:
    assert (
        refused("http", "8080", "--verify-webhook-secret", "s")
        == "--verify-webhook-secret needs --verify-webhook PROVIDER"
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["http", "80", "--oauth", "google"], "--oauth"),
        (["http", "80", "--oauth-client-id", "abc"], "--oauth-client-id"),
        (["http", "80", "--oidc", "https://idp.example"], "--oidc"),
        (["http", "80", "--oidc-scope", "email"], "--oidc-scope"),
        (["http", "80", "--mutual-tls-cas", "ca.pem"], "--mutual-tls-cas"),
        (["tls", "443", "--mutual-tls-cas", "ca.pem"], "--mutual-tls-cas"),
    ],
)
def test_cloud_only_flags_parse_and_are_refused_saying_they_need_ngroks_cloud(argv: list[str], flag: str) -> None:
    message = refused(*argv)
    assert message.startswith(f"{flag}: ")
    assert "ngrok's cloud" in message


def test_binding_and_pooling_are_carried() -> None:
    got = definition("http", "8080", "--url", "https://api.internal", "--binding", "internal", "--pooling-enabled")
    assert (got["url"], got["bindings"], got["pooling_enabled"], got["schemes"]) == (
        "https://api.internal",
        ["internal"],
        True,
        ["https"],
    )


def test_an_internal_tcp_url_is_the_endpoint_url_not_a_listen_address() -> None:
    assert definition("tcp", "5432", "--url", "tcp://db.internal:5432")["url"] == "tcp://db.internal:5432"
    assert definition("tcp", "5432", "--url", "tcp://127.0.0.1:2222")["remote_addr"] == "tcp://127.0.0.1:2222"


def test_deprecated_flags_are_hidden_from_help_as_in_ngrok() -> None:
    parser = Command().create_parser("manage.py", "agent")
    [subcommands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    http_help = subcommands.choices["http"].format_help()
    assert "--traffic-policy-file" in http_help
    assert "--basic-auth" not in http_help and "--compression" not in http_help


# --- config files -------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ngrok.yml"
    path.write_text(text)
    return path


def test_a_v3_endpoint_takes_an_inline_policy_object(tmp_path: Path) -> None:
    config = load_config(
        [
            write(
                tmp_path,
                """
version: 3
endpoints:
  - name: api
    url: http://127.0.0.1
    traffic_policy:
      on_http_request:
        - actions:
            - type: deny
    upstream:
      url: 8080
""",
            )
        ]
    )
    [got] = command_line("start", "api", config=config)
    assert got["traffic_policy"] == {"on_http_request": [{"actions": [{"type": "deny"}]}]}


def test_traffic_policy_file_is_read_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "tp.yml").write_text(POLICY)
    config = load_config(
        [
            write(
                tmp_path,
                """
version: 3
endpoints:
  - name: bar
    traffic_policy_file: tp.yml
    upstream:
      url: 8080
tunnels:
  old:
    proto: http
    addr: 8081
    traffic_policy_file: tp.yml
""",
            )
        ]
    )
    assert config.endpoints["bar"]["traffic_policy"] == POLICY
    assert config.tunnels["old"]["traffic_policy"] == POLICY
    assert "traffic_policy_file" not in config.endpoints["bar"]
    [bar] = command_line("start", "bar", config=config)
    assert bar["traffic_policy"] == POLICY


def test_a_missing_traffic_policy_file_names_the_endpoint_and_the_path(tmp_path: Path) -> None:
    path = write(
        tmp_path, "version: 3\nendpoints:\n  - name: bar\n    traffic_policy_file: gone.yml\n    upstream: {url: 80}\n"
    )
    with pytest.raises(ConfigFileError) as caught:
        load_config([path])
    assert str(caught.value) == f"{path}: endpoint 'bar': traffic_policy_file: {tmp_path / 'gone.yml'} does not exist"


def test_traffic_policy_and_traffic_policy_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "tp.yml").write_text(POLICY)
    path = write(
        tmp_path,
        "version: 2\ntunnels:\n  t:\n    addr: 80\n    traffic_policy: {}\n    traffic_policy_file: tp.yml\n",
    )
    with pytest.raises(ConfigFileError) as caught:
        load_config([path])
    assert str(caught.value).endswith("give traffic_policy or traffic_policy_file, not both")
