"""host_allowed: the Host names the web interface answers to."""

from __future__ import annotations

import pytest

from agentapi.host_allow_list import host_allowed, split_host

ALLOW = ["10.0.0.0/8", "2001:db8::/32", ".example.test", "tunnel.internal", "192.0.2.7", "[2001:db8:1::9]"]


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:4040", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[::1]:4040", "::1"),
        ("::1", "::1"),
        (" example.test ", "example.test"),
        ("", ""),
    ],
)
def test_split_host_drops_port_brackets_and_case(host: str, name: str) -> None:
    assert split_host(host) == name


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:4040", "LOCALHOST", "127.0.0.1", "127.0.0.1:4040", "[::1]", "[::1]:4040"]
)
def test_loopback_names_are_always_allowed(host: str) -> None:
    assert host_allowed(host, [])


@pytest.mark.parametrize(
    "host", ["", "evil.example", "localhost.evil.example", "127.0.0.2", "127.0.0.1.nip.io", "0.0.0.0", "[::2]"]
)
def test_other_names_are_refused_without_an_allow_list(host: str) -> None:
    assert not host_allowed(host, [])


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "10.255.255.255:4040",
        "[2001:db8::1]",
        "[2001:db8:ffff::1]:80",
        "example.test",
        "a.example.test",
        "a.b.example.test:4040",
        "tunnel.internal",
        "Tunnel.Internal",
        "192.0.2.7:80",
        "[2001:db8:1::9]:4040",
    ],
)
def test_entries_allow_by_ip_cidr_name_and_suffix(host: str) -> None:
    assert host_allowed(host, ALLOW)


@pytest.mark.parametrize(
    "host", ["11.0.0.1", "192.0.2.8", "[2001:db9::1]", "notexample.test", "example.test.evil", "x.tunnel.internal"]
)
def test_names_outside_the_entries_are_refused(host: str) -> None:
    assert not host_allowed(host, ALLOW)


def test_a_cidr_entry_never_matches_a_hostname() -> None:
    assert not host_allowed("ten.example", ["10.0.0.0/8"])


def test_blank_and_broken_entries_are_skipped() -> None:
    assert not host_allowed("10.0.0.1", ["", "  ", "10.0.0.0/99"])
    assert host_allowed("10.0.0.1", ["10.0.0.0/99", "10.0.0.1"])
