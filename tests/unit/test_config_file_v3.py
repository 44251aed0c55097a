"""ngrok 3.39's config file: every key its docs name loads (agent/config/v3.mdx, v2.mdx, changelog),
each agent key does what the key table says, and the endpoint keys become their tunnel keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from agentapi.cli.config_commands import check_files
from agentapi.cli.tunnels import config_definition
from agentapi.config_file import CLOUD_KEYS, AgentConfig, ConfigFileError, load_config
from agentapi.definitions import endpoint_definition
from agentapi.engine.tunnel_spec import TunnelConfigError, parse_definition
from tests.support.certificates import make_certificate

# Every agent option of agent/config/v3.mdx's table, plus crl_url (3.39.7) and local_storage (3.32).
FULL_V3 = """
version: 3
agent:
  api_key: 24yRd5U3DestCQapJrrVHLOqiAC_7RviwRqpd3wc9dKLujQZN
  authtoken: 4nq9771bPxe8ctg7LKr_2ClH7Y15Zqe4bWLWF9p
  connect_cas: host
  connect_interface: eth0
  connect_timeout: 30s
  connect_url: agent.example.com:443
  console_ui: false
  console_ui_color: transparent
  crl_noverify: false
  crl_url: http://crl.example.com/ngrok.crl
  dns_resolver_ips:
    - 1.1.1.1
    - 8.8.8.8
  heartbeat_interval: 1m
  heartbeat_tolerance: 5s
  inspect_db_size: 50000000
  local_storage: true
  log_level: warn
  log_format: json
  log: {log}
  metadata: bad8c1c0-8fce-11e4-b4a9-0800200c9a66
  proxy_url: socks5://localhost:9150
  remote_management: true
  update_channel: stable
  update_check: false
  web_addr: 127.0.0.1:4041
  web_allow_hosts:
    - 8.8.8.8
    - example.com
endpoints:
  - name: foo
    description: foo123
    metadata: '{{ "id": "example-app" }}'
    url: https://127.0.0.1
    bindings:
      - public
    pooling_enabled: true
    traffic_policy:
      on_http_request:
        - actions:
            - type: custom-response
              config:
                status_code: 200
                body: hello, Traffic Policy!
                headers:
                  content-type: text/plain
    upstream:
      url: 8080
      protocol: http1
      proxy_protocol: 2
  - name: bar
    url: http://127.0.0.1
    traffic_policy_file: tp.yml
    upstream:
      url: https://
  - name: random
    upstream:
      url: 80
  - name: ssh
    url: tcp://127.0.0.1:2222
    upstream:
      url: 22
  - name: secure
    url: tls://127.0.0.1:9443
    agent_tls_termination:
      server_certificate: cert.pem
      server_private_key: key.pem
    upstream:
      url: 443
  - name: inner
    url: https://api.internal
    upstream:
      url: 8081
tunnels:
  basic:
    proto: http
    addr: 80
    inspect: false
"""


@pytest.fixture
def full_config(tmp_path: Path) -> Path:
    make_certificate(tmp_path)
    (tmp_path / "tp.yml").write_text("on_http_request:\n  - actions:\n      - type: deny\n")
    path = tmp_path / "ngrok.yml"
    path.write_text(FULL_V3.format(log=tmp_path / "agent.log"))
    return path


def test_a_config_file_with_every_key_ngrok_3_39_documents_loads_and_checks(full_config: Path) -> None:
    check_files([full_config])  # raises on any refusal
    config = load_config([full_config])
    assert (config.web_addr, config.web_allow_hosts, config.inspect_db_size) == (
        "127.0.0.1:4041",
        ["8.8.8.8", "example.com"],
        50_000_000,
    )
    assert (config.log, config.log_level, config.log_format) == (str(full_config.parent / "agent.log"), "warn", "json")
    assert (config.console_ui, config.console_ui_color, config.local_storage) == ("false", "transparent", True)
    assert set(config.ignored) == {
        "api_key",
        "authtoken",
        "connect_cas",
        "connect_interface",
        "connect_timeout",
        "connect_url",
        "crl_noverify",
        "crl_url",
        "dns_resolver_ips",
        "heartbeat_interval",
        "heartbeat_tolerance",
        "metadata",
        "proxy_url",
        "remote_management",
        "update_channel",
        "update_check",
    }
    assert list(config.endpoints) == ["foo", "bar", "random", "ssh", "secure", "inner"]
    assert list(config.tunnels) == ["basic"]


def test_the_endpoint_keys_become_their_tunnel_keys(full_config: Path) -> None:
    config = load_config([full_config])
    foo = config_definition(config, "foo")
    assert {key: foo[key] for key in ("proto", "addr", "schemes", "proxy_protocol", "pooling_enabled", "bindings")} == {
        "proto": "http",
        "addr": "8080",
        "schemes": ["https"],
        "proxy_protocol": "2",
        "pooling_enabled": True,
        "bindings": ["public"],
    }
    assert (foo["description"], foo["metadata"]) == ("foo123", '{ "id": "example-app" }')
    assert config_definition(config, "bar")["addr"] == "https://localhost"
    secure = config_definition(config, "secure")
    assert (secure["proto"], secure["crt"], secure["key"], secure["terminate_at"]) == (
        "tls",
        str(full_config.parent / "cert.pem"),
        str(full_config.parent / "key.pem"),
        "agent",
    )


def test_an_endpoint_without_a_url_is_https_as_in_ngrok_3(full_config: Path) -> None:
    random = config_definition(load_config([full_config]), "random")
    assert (random["proto"], random["schemes"]) == ("http", ["https"])
    [spec] = parse_definition(random, name="random", public_host="127.0.0.1")
    assert (spec.proto, spec.public_tls, spec.listen_port) == ("https", True, 0)


@pytest.mark.parametrize(
    ("url", "proto", "schemes"),
    [
        ("", "http", ["https"]),
        ("https://", "http", ["https"]),
        ("http://", "http", None),
        ("127.0.0.1", "http", ["https"]),
        ("tcp://", "tcp", None),
        ("tls://", "tls", None),
    ],
)
def test_endpoint_url_forms_of_the_v3_docs(url: str, proto: str, schemes: list[str] | None) -> None:
    definition = endpoint_definition({"url": url, "upstream": {"url": "8080"}}, name="e", config_file=True)
    assert (definition["proto"], definition.get("schemes")) == (proto, schemes)


def test_an_api_endpoint_without_a_url_stays_http_for_this_agents_clients() -> None:
    assert "schemes" not in endpoint_definition({"upstream": {"url": "8080"}})


@pytest.mark.parametrize(
    ("given", "addr"),
    [
        ("https://", "https://localhost"),
        ("http://", "http://localhost"),
        ("example.org", "example.org"),
        ("8080", "8080"),
    ],
)
def test_upstream_url_forms_of_the_v3_docs(given: str, addr: str) -> None:
    definition = endpoint_definition({"url": "https://", "upstream": {"url": given}}, config_file=True)
    assert definition["addr"] == addr
    [spec] = parse_definition(definition, name="e", public_host="127.0.0.1")
    assert spec.upstream.port == {"https://localhost": 443}.get(addr, 80 if addr != "8080" else 8080)


def test_upstream_http2_is_refused_saying_only_http1_is_spoken() -> None:
    with pytest.raises(TunnelConfigError, match=r"upstream\.protocol: only http1 is supported by this agent"):
        endpoint_definition({"upstream": {"url": "80", "protocol": "http2"}}, config_file=True)


def test_agent_tls_termination_takes_inline_pem_and_keeps_it_in_the_data_directory(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    body = {
        "url": "tls://127.0.0.1:9443",
        "upstream": {"url": "443"},
        "agent_tls_termination": {"server_certificate": cert.read_text(), "server_private_key": key.read_text()},
    }
    with override_settings(DATA_DIR=tmp_path / "data"):
        definition = endpoint_definition(body, name="s", config_file=True)
        again = endpoint_definition(body, name="s", config_file=True)
    assert definition["crt"] == again["crt"] and definition["crt"].startswith(str(tmp_path / "data" / "tls"))
    assert Path(definition["crt"]).read_text() == cert.read_text()
    assert Path(definition["key"]).stat().st_mode & 0o777 == 0o600
    [spec] = parse_definition(definition, name="s", public_host="127.0.0.1")
    assert (spec.public_tls, spec.crt) == (True, definition["crt"])


@pytest.mark.parametrize(
    ("termination", "url", "says"),
    [
        (
            {"server_certificate": "c", "server_private_key": "k", "mutual_tls_certificate_authorities": ["ca.pem"]},
            "tls://",
            "client certificates are not asked for",
        ),
        ({"server_certificate": "c"}, "tls://", "agent_tls_termination.server_private_key is required"),
        ({"server_certificate": "c", "server_private_key": "k"}, "https://", "is for tls:// endpoints"),
        ({"server_certificate": "c", "server_private_key": "k", "foo": 1}, "tls://", "field foo not found"),
    ],
)
def test_agent_tls_termination_refusals(termination: dict[str, Any], url: str, says: str) -> None:
    body = {"url": url, "upstream": {"url": "443"}, "agent_tls_termination": termination}
    with pytest.raises(TunnelConfigError, match=says):
        endpoint_definition(body, config_file=True)


# --- the agent key table --------------------------------------------------------------------------


def load(tmp_path: Path, agent: str) -> AgentConfig:
    path = tmp_path / "ngrok.yml"
    path.write_text("version: 3\nagent:\n" + "".join(f"  {line}\n" for line in agent.splitlines()))
    return load_config([path])


@pytest.mark.parametrize("key", sorted(CLOUD_KEYS))
def test_each_cloud_session_key_is_accepted_and_named_as_ignored(key: str, tmp_path: Path) -> None:
    assert load(tmp_path, f"{key}: x").ignored == [key]


@pytest.mark.parametrize(
    ("lines", "field", "value"),
    [
        ("web_addr: 0.0.0.0:4040", "web_addr", "0.0.0.0:4040"),
        ("web_allow_hosts: [.example.com]", "web_allow_hosts", [".example.com"]),
        ("inspect_db_size: -1", "capture_db_size", -1),
        ("inspect_db_size: 0", "capture_db_size", 0),
        ("local_storage: false", "capture_db_size", -1),
        ("local_storage: false\ninspect_db_size: 1000", "capture_db_size", -1),
        ("local_storage: true\ninspect_db_size: 1000", "capture_db_size", 1000),
        ("log: stdout", "log", "stdout"),
        ("log: false", "log", "false"),
        ("log: /var/log/agent.log", "log", "/var/log/agent.log"),
        ("log_level: debug", "log_level", "debug"),
        ("log_format: logfmt", "log_format", "logfmt"),
        ("console_ui: iftty", "console_ui", "iftty"),
        ("console_ui: true", "console_ui", "true"),
        ("console_ui_color: black", "console_ui_color", "black"),
        ("workers: 2", "workers", 2),
    ],
)
def test_each_local_agent_key_sets_what_the_agent_runs_with(lines: str, field: str, value: Any, tmp_path: Path) -> None:
    assert getattr(load(tmp_path, lines), field) == value


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ("log_level: verbose", "invalid log_level 'verbose': one of debug, info, warn, error, crit"),
        ("log_format: xml", "invalid log_format 'xml': one of logfmt, json, term"),
        ("console_ui: sometimes", "invalid console_ui 'sometimes': one of true, false, iftty"),
        ("local_storage: maybe", "local_storage must be true or false"),
        ("web_addr: false", "web_addr: false is not supported"),
        ("workers: 0", "workers must be a whole number from 1 to 64"),
        ("workers: 65", "workers must be a whole number from 1 to 64"),
        ("workers: two", "workers must be a whole number from 1 to 64"),
        ("workers: true", "workers must be a whole number from 1 to 64"),
        ("frobnicate: 1", "unknown configuration key 'frobnicate'"),
    ],
)
def test_bad_agent_values_are_refused_naming_the_key(lines: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=says):
        load(tmp_path, lines)
