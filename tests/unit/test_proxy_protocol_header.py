"""The PROXY protocol header (agentapi/engine/proxy_protocol.py) against HAProxy's proxy-protocol.txt,
read back by an independent implementation (the `proxy-protocol` package)."""

from __future__ import annotations

import ipaddress

import pytest
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6, ProxyResultLocal, ProxyResultUnknown
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from agentapi.engine.proxy_protocol import V2_SIGNATURE, proxy_header


def test_version_1_is_the_text_line_of_the_specs_example() -> None:
    # proxy-protocol.txt 2.1: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    header = proxy_header(1, ("192.168.0.1", 56324), ("192.168.0.11", 443))
    assert header == b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"


def test_version_2_is_the_binary_block_haproxy_sends_for_ipv4() -> None:
    header = proxy_header(2, ("172.19.0.1", 42578), ("172.19.0.3", 80))
    assert header == bytes.fromhex("0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050")
    assert header.startswith(V2_SIGNATURE)


def test_an_independent_reader_gets_the_client_and_listener_back_from_both_versions() -> None:
    for version, reader in ((1, ProxyProtocolV1()), (2, ProxyProtocolV2())):
        result = reader.unpack(proxy_header(version, ("203.0.113.7", 50000), ("127.0.0.1", 8443)))
        assert isinstance(result, ProxyResultIPv4)
        assert result.peername == ("203.0.113.7", 50000)
        assert result.sockname == ("127.0.0.1", 8443)


def test_ipv6_addresses_from_asyncio_four_tuples_are_tcp6() -> None:
    source, destination = ("2001:db8::1", 40000, 0, 0), ("::1", 443, 0, 0)
    assert proxy_header(1, source, destination) == b"PROXY TCP6 2001:db8::1 ::1 40000 443\r\n"
    result = ProxyProtocolV2().unpack(proxy_header(2, source, destination))
    assert isinstance(result, ProxyResultIPv6)
    assert result.source == (ipaddress.IPv6Address("2001:db8::1"), 40000)
    assert result.dest == (ipaddress.IPv6Address("::1"), 443)


def test_an_ipv6_zone_is_dropped() -> None:
    header = proxy_header(1, ("fe80::1%eth0", 1, 0, 2), ("fe80::2%eth0", 2, 0, 2))
    assert header == b"PROXY TCP6 fe80::1 fe80::2 1 2\r\n"


def test_ipv4_mapped_addresses_of_a_dual_stack_listener_are_written_as_ipv4() -> None:
    header = proxy_header(1, ("::ffff:198.51.100.2", 1234, 0, 0), ("::ffff:127.0.0.1", 80, 0, 0))
    assert header == b"PROXY TCP4 198.51.100.2 127.0.0.1 1234 80\r\n"


def test_mixed_families_are_both_written_as_ipv6() -> None:
    header = proxy_header(1, ("198.51.100.2", 1234), ("::1", 80, 0, 0))
    assert header == b"PROXY TCP6 ::ffff:c633:6402 ::1 1234 80\r\n"
    result = ProxyProtocolV2().unpack(proxy_header(2, ("198.51.100.2", 1234), ("::1", 80, 0, 0)))
    assert isinstance(result, ProxyResultIPv6)
    assert result.source == (ipaddress.IPv6Address("::ffff:198.51.100.2"), 1234)


@pytest.mark.parametrize("source", [None, "/run/agent.sock", ("not-an-ip", 80), ("127.0.0.1", 70000), ()])
def test_an_address_the_header_cannot_carry_gives_unknown(source: object) -> None:
    assert proxy_header(1, source, ("127.0.0.1", 80)) == b"PROXY UNKNOWN\r\n"
    assert isinstance(ProxyProtocolV1().unpack(proxy_header(1, source, ("127.0.0.1", 80))), ProxyResultUnknown)
    local = proxy_header(2, source, ("127.0.0.1", 80))
    assert local == V2_SIGNATURE + b"\x20\x00\x00\x00"  # LOCAL, UNSPEC, no address block
    assert isinstance(ProxyProtocolV2().unpack(local), ProxyResultLocal)


def test_the_longest_version_1_line_fits_the_specs_107_bytes() -> None:
    longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"
    header = proxy_header(1, (longest, 65535, 0, 0), (longest, 65535, 0, 0))
    assert len(header) <= 107


def test_only_versions_1_and_2_exist() -> None:
    with pytest.raises(ValueError, match="version 3"):
        proxy_header(3, ("127.0.0.1", 1), ("127.0.0.1", 2))
