"""Tunnel definitions: addr normalisation and the checks of parse_definition."""

from __future__ import annotations

import pytest

from agentapi.engine.tunnel_spec import (
    TunnelConfigError,
    TunnelSpec,
    Upstream,
    join_host_port,
    normalise_addr,
    parse_definition,
    upstream_of,
)

PUBLIC = "127.0.0.1"


def parse(**definition: object) -> TunnelSpec:
    [spec] = parse_definition(definition, name="t", public_host=PUBLIC)
    return spec


def refusal(**definition: object) -> str:
    with pytest.raises(TunnelConfigError) as caught:
        parse_definition(definition, name="t", public_host=PUBLIC)
    return str(caught.value)


@pytest.mark.parametrize(
    ("proto", "addr", "shown"),
    [
        ("http", "80", "http://localhost:80"),
        ("http", 8080, "http://localhost:8080"),
        ("http", " 8080 ", "http://localhost:8080"),
        ("http", "443", "https://localhost:443"),
        ("http", 443, "https://localhost:443"),
        ("http", "example.test:8080", "http://example.test:8080"),
        ("http", "example.test:443", "https://example.test:443"),
        ("http", "example.test", "http://example.test:80"),
        ("http", ":3000", "http://localhost:3000"),
        ("http", "[::1]:8080", "http://[::1]:8080"),
        ("http", "http://localhost:3000", "http://localhost:3000"),
        ("http", "https://example.test", "https://example.test"),
        ("http", "http://example.test/path", "http://example.test/path"),
        ("tcp", "22", "localhost:22"),
        ("tcp", 22, "localhost:22"),
        ("tcp", "443", "localhost:443"),
        ("tcp", "db.internal:5432", "db.internal:5432"),
        ("tcp", "tcp://localhost:22", "tcp://localhost:22"),
        ("tls", "80", "localhost:80"),
        ("tls", "443", "tls://localhost:443"),
        ("tls", "example.test:443", "tls://example.test:443"),
        ("tls", "example.test:8443", "example.test:8443"),
    ],
)
def test_normalise_addr(proto: str, addr: str | int, shown: str) -> None:
    assert normalise_addr(proto, addr) == shown


@pytest.mark.parametrize(
    ("proto", "addr"),
    [
        ("http", ""),
        ("http", "   "),
        ("http", "0"),
        ("http", 0),
        ("http", -1),
        ("http", "65536"),
        ("http", "localhost:http"),
        ("http", "http://"),
        ("http", "http://localhost:99999"),
        ("http", True),
        ("http", None),
        ("http", 80.0),
        ("http", ["80"]),
        ("tcp", "localhost"),
        ("tls", "example.test"),
    ],
)
def test_normalise_addr_refuses_what_names_no_local_service(proto: str, addr: object) -> None:
    with pytest.raises(TunnelConfigError):
        normalise_addr(proto, addr)


@pytest.mark.parametrize(
    ("proto", "addr", "upstream"),
    [
        ("http", "http://localhost:80", Upstream("http", "localhost", 80)),
        ("http", "https://localhost:443", Upstream("https", "localhost", 443)),
        ("http", "https://example.test", Upstream("https", "example.test", 443)),
        ("http", "http://example.test", Upstream("http", "example.test", 80)),
        ("tcp", "localhost:22", Upstream("tcp", "localhost", 22)),
        ("tls", "tls://localhost:443", Upstream("tls", "localhost", 443)),
        ("http", "http://[::1]:8080", Upstream("http", "::1", 8080)),
    ],
)
def test_upstream_of_a_normalised_addr(proto: str, addr: str, upstream: Upstream) -> None:
    assert upstream_of(proto, addr) == upstream


def test_an_http_addr_must_speak_http_or_https() -> None:
    assert "scheme" in refusal(addr="ftp://example.test:21")


def test_http_is_the_default_proto_and_inspected_by_default() -> None:
    spec = parse(addr="8080")
    assert (spec.proto, spec.addr, spec.inspect) == ("http", "http://localhost:8080", True)
    assert (spec.listen_host, spec.listen_port) == (PUBLIC, 0)
    assert spec.name == "t"


def test_tcp_and_tls_are_never_inspected() -> None:
    assert parse(proto="tcp", addr="22").inspect is False
    assert parse(proto="tcp", addr="22", inspect=True).inspect is False
    assert parse(proto="tls", addr="443").inspect is False


def test_inspect_false_is_kept() -> None:
    assert parse(addr="80", inspect=False).inspect is False


def test_inspect_must_be_a_boolean() -> None:
    assert refusal(addr="80", inspect="false") == "inspect must be true or false"


@pytest.mark.parametrize("proto", ["https", "udp", "HTTP", "", None, 5])
def test_only_http_tcp_and_tls_are_protocols(proto: object) -> None:
    assert refusal(proto=proto, addr="80") == f"Invalid protocol name '{proto}'"


@pytest.mark.parametrize(
    ("proto", "key", "go_type"),
    [
        ("http", "foo", "HTTPv2Tunnel"),
        ("http", "remote_addr", "HTTPv2Tunnel"),
        ("tcp", "foo", "TCPv2Tunnel"),
        ("tcp", "basic_auth", "TCPv2Tunnel"),
        ("tcp", "schemes", "TCPv2Tunnel"),
        ("tls", "foo", "TLSv2Tunnel"),
        ("tls", "host_header", "TLSv2Tunnel"),
    ],
)
def test_unknown_keys_are_refused_with_gos_wording(proto: str, key: str, go_type: str) -> None:
    assert refusal(proto=proto, addr="80", **{key: "x"}) == f"field {key} not found in type config.{go_type}"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("oauth", "oauth needs ngrok's cloud"),
        ("labels", "labels need ngrok's cloud"),
        ("websocket_tcp_converter", "websocket_tcp_converter is not supported by this agent"),
    ],
)
def test_real_agent_keys_this_agent_cannot_run_are_refused_with_the_reason(key: str, reason: str) -> None:
    # The deprecated keys that can run become Traffic Policy (tests/unit/test_tunnel_spec_policy.py).
    assert refusal(addr="80", **{key: {}}).startswith(reason)


def test_tls_termination_needs_both_files() -> None:
    assert "needs both crt and key" in refusal(proto="tls", addr="443", crt="x.pem")


def test_tls_termination_refuses_missing_files() -> None:
    assert (
        refusal(proto="tls", addr="443", crt="/no/x.pem", key="/no/k.pem") == "crt '/no/x.pem' is not a readable file"
    )


def test_crt_and_key_do_not_go_with_terminate_at_upstream() -> None:
    assert refusal(proto="tls", addr="443", crt="a", key="b", terminate_at="upstream") == (
        "crt and key are for terminate_at: agent"
    )


def test_tls_without_crt_passes_through() -> None:
    spec = parse_definition({"proto": "tls", "addr": "443"}, name="t", public_host=PUBLIC)[0]
    assert not spec.public_tls


def test_addr_is_required() -> None:
    assert refusal(proto="http") == "addr is required"


def test_a_definition_must_be_an_object() -> None:
    with pytest.raises(TunnelConfigError):
        parse_definition(["addr", "80"], name="t", public_host=PUBLIC)  # type: ignore[arg-type]  # the point


def test_the_definition_is_kept_as_given() -> None:
    assert parse(addr=80, metadata="m").definition == {"addr": 80, "metadata": "m"}


@pytest.mark.parametrize("entries", [["nocolon"], [":nouser"], "nocolon", [5], {"a": "b"}])
def test_broken_basic_auth_is_refused(entries: object) -> None:
    refusal(addr="80", basic_auth=entries)


@pytest.mark.parametrize("bind_tls", [False, "false", None])
def test_bind_tls_false_gives_an_http_tunnel(bind_tls: object) -> None:
    assert parse(addr="80", bind_tls=bind_tls).proto == "http"


def test_schemes_http_gives_an_http_tunnel() -> None:
    assert parse(addr="80", schemes=["http"]).proto == "http"


@pytest.mark.parametrize("extra", [{"bind_tls": True}, {"bind_tls": "true"}, {"schemes": ["https"]}])
def test_https_alone_gives_one_https_tunnel(extra: dict) -> None:
    [spec] = parse_definition({"addr": "80", **extra}, name="web", public_host=PUBLIC)
    assert (spec.name, spec.proto, spec.public_tls) == ("web", "https", True)


@pytest.mark.parametrize(
    "extra", [{"bind_tls": "both"}, {"schemes": ["http", "https"]}, {"schemes": ["https", "http"]}]
)
def test_both_schemes_give_the_https_tunnel_first_and_an_http_twin(extra: dict) -> None:
    https, http = parse_definition(
        {"addr": "80", "url": "http://127.0.0.1:9000", **extra}, name="web", public_host=PUBLIC
    )
    assert (https.name, https.proto, https.listen_port) == ("web", "https", 9000)
    assert (http.name, http.proto, http.public_tls, http.listen_port) == ("web (http)", "http", False, 0)


@pytest.mark.parametrize("extra", [{"bind_tls": "maybe"}, {"schemes": []}, {"schemes": ["ftp"]}, {"schemes": "http"}])
def test_broken_schemes_are_refused(extra: dict) -> None:
    refusal(addr="80", **extra)


@pytest.mark.parametrize(
    ("extra", "listen"),
    [
        ({"url": "http://127.0.0.1:8000"}, ("127.0.0.1", 8000)),
        ({"url": "127.0.0.1:8000"}, ("127.0.0.1", 8000)),
        ({"url": "example.test"}, ("example.test", 0)),
        ({"hostname": "0.0.0.0:9000"}, ("0.0.0.0", 9000)),
        ({"domain": "[::1]:9000"}, ("::1", 9000)),
        ({"subdomain": "abc"}, (PUBLIC, 0)),
        ({"url": ""}, (PUBLIC, 0)),
    ],
)
def test_http_listen_address_comes_from_url_hostname_or_domain(extra: dict, listen: tuple) -> None:
    spec = parse(addr="80", **extra)
    assert (spec.listen_host, spec.listen_port) == listen


@pytest.mark.parametrize(
    ("extra", "listen"),
    [
        ({"remote_addr": "127.0.0.1:2222"}, ("127.0.0.1", 2222)),
        ({"url": "tcp://127.0.0.1:2222"}, ("127.0.0.1", 2222)),
        ({"url": "tcp://"}, (PUBLIC, 0)),
        ({}, (PUBLIC, 0)),
    ],
)
def test_tcp_listen_address_comes_from_remote_addr_or_url(extra: dict, listen: tuple) -> None:
    spec = parse(proto="tcp", addr="22", **extra)
    assert (spec.listen_host, spec.listen_port) == listen


@pytest.mark.parametrize("extra", [{"remote_addr": "127.0.0.1:70000"}, {"remote_addr": 5}, {"url": "h:p"}])
def test_a_broken_listen_address_is_refused(extra: dict) -> None:
    refusal(proto="tcp", addr="22", **extra)


@pytest.mark.parametrize(
    "raw", [{"allow_cidrs": ["nope"]}, {"allow": []}, ["10.0.0.0/8"], {"deny_cidrs": "10.0.0.0/8"}]
)
def test_broken_ip_restriction_is_refused(raw: object) -> None:
    refusal(addr="80", ip_restriction=raw)


@pytest.mark.parametrize("raw", [{"add": ["no colon"]}, {"add": ["bad name: x"]}, {"other": []}, ["X-A: b"]])
def test_broken_request_header_is_refused(raw: object) -> None:
    refusal(addr="80", request_header=raw)


def test_host_header_and_metadata_must_be_strings() -> None:
    assert parse(addr="80", host_header="rewrite").host_header == "rewrite"
    refusal(addr="80", host_header=5)
    refusal(addr="80", metadata={"a": 1})


# --- values: every key's type and size (a bad value is a refusal, never a crash later) ---------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", False),
        ("name", []),
        ("name", {}),
        ("name", 0),
        ("inspect", 1),
        ("inspect", "true"),
        ("metadata", 5),
        ("metadata", ["m"]),
        ("description", True),
        ("host_header", {}),
        ("url", 9000),
        ("hostname", ["h"]),
        ("subdomain", 1),
        ("domain", False),
        ("schemes", "https"),
        ("bind_tls", 1),
        ("bind_tls", []),
        ("basic_auth", {"a": "b"}),
        ("basic_auth", 5),
        ("auth", True),
        ("ip_restriction", ["10.0.0.0/8"]),
        ("request_header", "X-A: b"),
        ("compression", "yes"),
        ("response_timeout", True),
        ("response_timeout", [5]),
        ("addr", True),
        ("addr", 80.5),
        ("addr", ["80"]),
        ("addr", {"port": 80}),
    ],
)
def test_every_key_refuses_a_value_of_the_wrong_json_type(key: str, value: object) -> None:
    definition = {"addr": "80", key: value}
    with pytest.raises(TunnelConfigError) as caught:
        parse_definition(definition, name="t", public_host=PUBLIC)
    assert key in str(caught.value)


@pytest.mark.parametrize(
    ("proto", "key", "value"),
    [
        ("tcp", "remote_addr", 2222),
        ("tcp", "remote_addr", False),
        ("tls", "crt", 1),
        ("tls", "key", []),
        ("tls", "terminate_at", True),
    ],
)
def test_tcp_and_tls_keys_refuse_wrong_types_too(proto: str, key: str, value: object) -> None:
    assert key in refusal(proto=proto, addr="443", **{key: value})


def test_null_is_absent_as_for_gos_decoder() -> None:
    spec = parse(addr="80", inspect=None, metadata=None, url=None, basic_auth=None, bind_tls=None, name=None)
    assert (spec.inspect, spec.metadata, spec.listen_port, spec.policy, spec.proto) == (True, "", 0, None, "http")


@pytest.mark.parametrize(
    "definition",
    [
        {"addr": "80", "metadata": "m" * 4097},
        {"addr": "80", "description": "d" * 4097},
        {"addr": "80", "host_header": "h" * 4097},
        {"addr": "80", "basic_auth": ["u:" + "p" * 4097]},
        {"addr": "80", "basic_auth": ["u:p"] * 1001},
        {"addr": "80", "request_header": {"add": ["X-A: b"] * 1001}},
        {"addr": "80", "ip_restriction": {"allow_cidrs": ["10.0.0.0/8"] * 1001}},
        {"addr": "x" * 5000 + ".test:80"},
        {"addr": 10**30},
        {"addr": -(10**30)},
        {"addr": "80", "response_timeout": 10**30},
        {"addr": "80", "response_timeout": float("inf")},
        {"addr": "80", "response_timeout": float("nan")},
    ],
)
def test_too_long_too_many_and_too_big_are_refused(definition: dict) -> None:
    with pytest.raises(TunnelConfigError):
        parse_definition(definition, name="t", public_host=PUBLIC)


@pytest.mark.parametrize("digits", [300, 1000, 4000])
def test_a_port_of_hundreds_of_digits_is_refused_without_a_crash(digits: int) -> None:
    for addr in ("9" * digits, f"localhost:{'9' * digits}", f"http://localhost:{'9' * digits}", 10 ** (digits - 1)):
        with pytest.raises(TunnelConfigError):
            parse_definition({"addr": addr}, name="t", public_host=PUBLIC)
    for key in ("url", "hostname", "domain"):
        with pytest.raises(TunnelConfigError):
            parse_definition({"addr": "80", key: "9" * digits}, name="t", public_host=PUBLIC)


def test_a_yaml_value_json_could_not_send_is_refused() -> None:
    import datetime as dt

    assert refusal(addr="80", metadata=dt.date(2024, 1, 1)) == "metadata must be a string"
    assert "JSON" in refusal(addr="80", request_header={"add": [dt.date(2024, 1, 1)]})


def test_a_refusal_does_not_echo_a_huge_value() -> None:
    assert len(refusal(proto="x" * 4000, addr="80")) < 200
    assert len(refusal(addr="80", **{"k" * 4000: 1})) < 200


# --- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1:",
        "localhost:",
        ":",
        "[::1]:",
        "http://127.0.0.1:",
        "http://[::1]:",
        "::1",
        "::1:8080",
        "fe80::1:80",
        "[::1]x",
        "[::1",
        "[nothing]:80",
        "[127.0.0.1]:80",
        "http://::1:8080",
        "localhost:+80",
        "a..b:80",
        ("a" * 64) + ".test:80",
        "http://" + ("a" * 64) + ".test",
        "exa mple:80",
        "http://exa_mple\u00e9.test",
    ],
)
def test_addresses_go_refuses_are_refused(addr: str) -> None:
    with pytest.raises(TunnelConfigError):
        normalise_addr("http", addr)


def test_an_empty_port_says_so() -> None:
    assert refusal(addr="127.0.0.1:") == "invalid address '127.0.0.1:': the port is empty"


def test_an_unbracketed_ipv6_address_gets_a_hint() -> None:
    assert "[::1]:8080" in refusal(addr="::1:8080")


@pytest.mark.parametrize(
    ("proto", "addr", "shown"),
    [
        ("http", "[::1]", "http://[::1]:80"),
        ("http", "[::1]:443", "https://[::1]:443"),
        ("http", "[fe80::1%eth0]:8080", "http://[fe80::1%eth0]:8080"),
        ("tcp", "[::1]:22", "[::1]:22"),
        ("tls", "[::1]:443", "tls://[::1]:443"),
        ("tls", "[2001:db8::1]:8443", "[2001:db8::1]:8443"),
        ("http", "http://[::1]:8080", "http://[::1]:8080"),
        ("http", "my_service:8080", "http://my_service:8080"),
    ],
)
def test_ipv6_literals_are_bracketed_in_config_addr(proto: str, addr: str, shown: str) -> None:
    assert normalise_addr(proto, addr) == shown


def test_join_host_port_brackets_ipv6_only() -> None:
    assert join_host_port("::1", 80) == "[::1]:80"
    assert join_host_port("127.0.0.1", 80) == "127.0.0.1:80"
    assert join_host_port("localhost", 80) == "localhost:80"
    assert Upstream("http", "::1", 8080).netloc == "[::1]:8080"


@pytest.mark.parametrize(
    ("addr", "host"),
    [
        ("[::1]:8080", b"[::1]:8080"),
        ("[::1]:80", b"[::1]"),
        ("http://[::1]:8080", b"[::1]:8080"),
        ("https://[::1]", b"[::1]"),
        ("https://[::1]:8443", b"[::1]:8443"),
        ("127.0.0.1:8080", b"127.0.0.1:8080"),
        ("localhost:80", b"localhost"),
    ],
)
def test_host_header_rewrite_brackets_an_ipv6_upstream(addr: str, host: bytes) -> None:
    assert parse(addr=addr, host_header="rewrite").forward_host == host


@pytest.mark.parametrize(
    ("extra", "listen"),
    [
        ({"url": "http://[::1]:9000"}, ("::1", 9000)),
        ({"url": "[::1]:9000"}, ("::1", 9000)),
        ({"url": "http://[::1]"}, ("::1", 0)),
        ({"url": "[::1]"}, ("::1", 0)),
        ({"url": "http://127.0.0.1:9000/"}, ("127.0.0.1", 9000)),
        ({"hostname": ":9000"}, (PUBLIC, 9000)),
    ],
)
def test_an_ipv6_listen_address_is_kept_without_brackets(extra: dict, listen: tuple) -> None:
    spec = parse(addr="80", **extra)
    assert (spec.listen_host, spec.listen_port) == listen


@pytest.mark.parametrize("url", ["::1", "::1:9000", "[::1]:", "127.0.0.1:", "[zz]:9000", "a" * 64 + ".test:9000"])
def test_a_broken_listen_address_is_refused_with_go_rules(url: str) -> None:
    refusal(addr="80", url=url)


@pytest.mark.parametrize("public_host", ["::1", "[::1]"])
def test_an_ipv6_public_host_is_a_listen_host_without_brackets(public_host: str) -> None:
    [spec] = parse_definition({"addr": "80"}, name="t", public_host=public_host)
    assert spec.listen_host == "::1"


def test_a_broken_public_host_is_named_in_the_refusal() -> None:
    with pytest.raises(TunnelConfigError, match="AGENT_PUBLIC_HOST"):
        parse_definition({"addr": "80"}, name="t", public_host="not a host")


# --- response_timeout --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (5, 5.0),
        (0.5, 0.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        (" 2m ", 120.0),
        ("24h", 86400.0),
    ],
)
def test_response_timeout_takes_seconds_or_a_go_duration(raw: object, seconds: float) -> None:
    assert parse(addr="80", response_timeout=raw).response_timeout == seconds


def test_without_response_timeout_the_agent_default_applies() -> None:
    assert parse(addr="80").response_timeout is None
    assert parse(addr="80", response_timeout=None).response_timeout is None


@pytest.mark.parametrize("raw", [0, -1, "0s", "5", "5 m", "m", "1d", "24h1s", 86401, "-5s", "5m-3s", "ten"])
def test_response_timeout_refuses_what_is_no_positive_duration(raw: object) -> None:
    assert "response_timeout" in refusal(addr="80", response_timeout=raw)


def test_response_timeout_is_for_http_tunnels() -> None:
    assert refusal(proto="tcp", addr="22", response_timeout=5) == (
        "field response_timeout not found in type config.TCPv2Tunnel"
    )
