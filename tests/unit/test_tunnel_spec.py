"""Tunnel definitions: addr normalisation and the checks of parse_definition."""

from __future__ import annotations

import ipaddress

import pytest

from agentapi.engine.tunnel_spec import TunnelConfigError, Upstream, normalise_addr, parse_definition, upstream_of

PUBLIC = "127.0.0.1"


def parse(**definition: object):
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


@pytest.mark.parametrize("key", ["response_header", "oauth", "circuit_breaker"])
def test_real_agent_keys_this_agent_lacks_are_refused_plainly(key: str) -> None:
    assert refusal(addr="80", **{key: {}}) == f"field {key} is not supported by this agent"


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
        parse_definition(["addr", "80"], name="t", public_host=PUBLIC)  # type: ignore[arg-type]


def test_the_definition_is_kept_as_given() -> None:
    assert parse(addr=80, metadata="m").definition == {"addr": 80, "metadata": "m"}


def test_basic_auth_takes_user_password_pairs() -> None:
    assert parse(addr="80", basic_auth=["a:b", "c:d:e"]).basic_auth == (("a", "b"), ("c", "d:e"))


def test_auth_is_the_2x_spelling_of_basic_auth_and_may_be_one_string() -> None:
    assert parse(addr="80", auth="user:pass").basic_auth == (("user", "pass"),)


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


def test_ip_restriction_takes_cidr_lists() -> None:
    spec = parse(addr="80", ip_restriction={"allow_cidrs": ["10.0.0.0/8"], "deny_cidrs": ["10.1.0.0/16"]})
    assert spec.allow_cidrs == (ipaddress.ip_network("10.0.0.0/8"),)
    assert spec.deny_cidrs == (ipaddress.ip_network("10.1.0.0/16"),)


@pytest.mark.parametrize(
    "raw", [{"allow_cidrs": ["nope"]}, {"allow": []}, ["10.0.0.0/8"], {"deny_cidrs": "10.0.0.0/8"}]
)
def test_broken_ip_restriction_is_refused(raw: object) -> None:
    refusal(addr="80", ip_restriction=raw)


def test_request_header_add_and_remove() -> None:
    spec = parse(addr="80", request_header={"add": ["X-Env: prod"], "remove": ["Cookie"]})
    assert spec.request_header_add == ((b"X-Env", b"prod"),)
    assert spec.request_header_remove == frozenset({b"cookie"})


@pytest.mark.parametrize("raw", [{"add": ["no colon"]}, {"add": ["bad name: x"]}, {"other": []}, ["X-A: b"]])
def test_broken_request_header_is_refused(raw: object) -> None:
    refusal(addr="80", request_header=raw)


def test_host_header_and_metadata_must_be_strings() -> None:
    assert parse(addr="80", host_header="rewrite").host_header == "rewrite"
    refusal(addr="80", host_header=5)
    refusal(addr="80", metadata={"a": 1})
