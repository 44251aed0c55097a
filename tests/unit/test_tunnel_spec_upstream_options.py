"""Tunnel definitions: the file:// addr of the built-in file server, proxy_protocol, and
upstream_tls_verify(_cas), as the command line, config files and the API hand them over."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentapi.definitions import endpoint_definition, tunnel_definition
from agentapi.engine.tunnel_spec import (
    FILE_SERVER_PLACEHOLDER,
    TunnelConfigError,
    TunnelSpec,
    normalise_addr,
    parse_definition,
)
from tests.support.certificates import make_certificate

PUBLIC = "127.0.0.1"


def parse(**definition: object) -> list[TunnelSpec]:
    return parse_definition(definition, name="t", public_host=PUBLIC)


def refusal(**definition: object) -> str:
    with pytest.raises(TunnelConfigError) as caught:
        parse_definition(definition, name="t", public_host=PUBLIC)
    return str(caught.value)


# --- file:// ---------------------------------------------------------------------------------
def test_a_file_addr_serves_its_directory_through_a_placeholder_upstream(tmp_path: Path) -> None:
    [spec] = parse(addr=f"file://{tmp_path}")
    assert (spec.proto, spec.addr, spec.file_root) == ("http", f"file://{tmp_path}", str(tmp_path))
    assert spec.upstream == FILE_SERVER_PLACEHOLDER
    assert spec.inspect  # captured like any exchange


def test_pyngroks_file_root_and_localhost_and_escapes_are_read_as_ngrok_does(tmp_path: Path) -> None:
    spaced = tmp_path / "my site"
    spaced.mkdir()
    assert parse(addr="file:///")[0].file_root == "/"
    assert parse(addr=f"file://localhost{tmp_path}/")[0].file_root == str(tmp_path)
    assert parse(addr=f"file://{tmp_path}/my%20site")[0].file_root == str(spaced)
    assert parse(addr=f"FILE://{tmp_path}")[0].file_root == str(tmp_path)
    assert normalise_addr("http", f"file://{tmp_path}") == f"file://{tmp_path}"


def test_both_schemes_give_each_tunnel_the_directory(tmp_path: Path) -> None:
    specs = parse(addr=f"file://{tmp_path}", bind_tls="both")
    assert [(spec.proto, spec.file_root) for spec in specs] == [("https", str(tmp_path)), ("http", str(tmp_path))]


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("file://relative/dir", "a file:// addr names a local directory (file:///absolute/path)"),
        ("file:relative", "write a directory as file:///absolute/path"),
        ("file:///no/such/directory", "'/no/such/directory' is not a directory"),
        ("file:///etc/hostname", "'/etc/hostname' is not a directory"),
        ("file:///tmp?x=1", "a file:// addr has no query or fragment"),
        ("file:///tmp#top", "a file:// addr has no query or fragment"),
        ("file:///tmp%00", "the path holds a NUL character"),
        ("file:///%ff", "the path's escapes are not UTF-8"),
        ("file://example.com/tmp", "a file:// addr names a local directory"),
    ],
)
def test_a_file_addr_that_names_no_local_directory_is_refused(addr: str, reason: str) -> None:
    assert refusal(addr=addr).startswith(f"invalid addr {addr!r}: {reason}")


@pytest.mark.parametrize("proto", ["tcp", "tls"])
def test_only_http_tunnels_serve_files(proto: str) -> None:
    assert refusal(proto=proto, addr="file:///tmp") == (
        f"invalid addr 'file:///tmp': a file:// addr is served over http, not {proto}"
    )


def test_the_endpoints_upstream_url_may_name_a_directory(tmp_path: Path) -> None:
    definition = endpoint_definition({"url": "https://", "upstream": {"url": f"file://{tmp_path}"}})
    [spec] = parse_definition(definition, name="e", public_host=PUBLIC)
    assert (spec.proto, spec.file_root) == ("https", str(tmp_path))


# --- proxy_protocol ---------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "version"), [("1", 1), ("2", 2), (1, 1), (2, 2), (" 2 ", 2), ("", 0), (None, 0)])
@pytest.mark.parametrize("proto", ["http", "tcp", "tls"])
def test_proxy_protocol_takes_ngroks_strings_and_numbers_on_every_proto(
    proto: str, value: object, version: int
) -> None:
    assert parse(proto=proto, addr="8080", proxy_protocol=value)[0].proxy_protocol == version


def test_the_v2_config_name_proxy_proto_is_the_same_key() -> None:
    assert parse(proto="tcp", addr="22", proxy_proto="2")[0].proxy_protocol == 2
    assert refusal(addr="80", proxy_proto="1", proxy_protocol="2") == (
        "proxy_protocol and proxy_proto are two names of one key: give one"
    )


def test_the_api_tunnels_resource_carries_proxy_protocol() -> None:
    definition = tunnel_definition({"name": "n", "proto": "tcp", "addr": "22", "proxy_protocol": "1"})
    assert parse_definition(definition, name="n", public_host=PUBLIC)[0].proxy_protocol == 1


@pytest.mark.parametrize("value", ["3", 0, "v2", True, 2.5])
def test_another_proxy_protocol_version_is_refused(value: object) -> None:
    assert refusal(addr="80", proxy_protocol=value).startswith(("invalid proxy_protocol", "proxy_protocol must be"))


def test_the_file_server_reads_no_proxy_header() -> None:
    assert refusal(addr="file:///tmp", proxy_protocol="1") == (
        "proxy_protocol: the built-in file server of a file:// addr reads no PROXY header"
    )


# --- upstream_tls_verify ----------------------------------------------------------------------
def test_upstream_tls_is_not_verified_unless_asked() -> None:
    [spec] = parse(addr="https://localhost:8443")
    assert (spec.upstream_tls_verify, spec.upstream_tls_verify_cas) == (False, "")
    assert parse(addr="https://localhost:8443", upstream_tls_verify=True)[0].upstream_tls_verify


def test_a_ca_file_turns_verification_on(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path)
    [spec] = parse(addr="https://localhost:8443", upstream_tls_verify_cas=str(cert))
    assert (spec.upstream_tls_verify, spec.upstream_tls_verify_cas) == (True, str(cert))


def test_a_ca_file_with_verification_turned_off_is_a_contradiction(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path)
    assert refusal(addr="https://localhost:8443", upstream_tls_verify=False, upstream_tls_verify_cas=str(cert)) == (
        "upstream_tls_verify_cas is given but upstream_tls_verify is false"
    )


def test_a_ca_file_must_hold_pem_certificates(tmp_path: Path) -> None:
    missing, garbage = tmp_path / "none.pem", tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert refusal(addr="https://localhost:1", upstream_tls_verify_cas=str(missing)) == (
        f"upstream_tls_verify_cas {str(missing)!r} is not a readable file"
    )
    assert refusal(addr="https://localhost:1", upstream_tls_verify_cas=str(garbage)).startswith(
        f"upstream_tls_verify_cas {str(garbage)!r} holds no PEM CA certificate"
    )


@pytest.mark.parametrize("addr", ["8080", "http://localhost:8080", "file:///tmp"])
def test_verifying_an_upstream_that_speaks_no_tls_is_refused(addr: str) -> None:
    assert "is not https, so there is no certificate to verify" in refusal(addr=addr, upstream_tls_verify=True)


def test_a_tls_tunnel_never_speaks_tls_upstream() -> None:
    assert refusal(proto="tls", addr="443", upstream_tls_verify=True).startswith(
        "upstream_tls_verify: this agent never speaks TLS to a tls tunnel's upstream"
    )
    assert parse(proto="tls", addr="443", upstream_tls_verify=False)[0].upstream_tls_verify is False


def test_tcp_tunnels_have_no_upstream_tls_keys() -> None:
    assert refusal(proto="tcp", addr="22", upstream_tls_verify=True) == (
        "field upstream_tls_verify not found in type config.TCPv2Tunnel"
    )


@pytest.mark.parametrize(("key", "value"), [("upstream_tls_verify", "yes"), ("upstream_tls_verify_cas", 1)])
def test_upstream_tls_values_have_json_types(key: str, value: object) -> None:
    assert refusal(addr="https://localhost:1", **{key: value}).startswith(f"{key} must be")
