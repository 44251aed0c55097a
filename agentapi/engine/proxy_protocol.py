"""The PROXY protocol header the agent writes first on an upstream connection (`proxy_protocol`).

The wire format is HAProxy's (doc/proxy-protocol.txt, "The PROXY protocol, Versions 1 & 2"); ngrok
sends it when an endpoint sets `upstream.proxy_protocol` (`agent/config/v3.mdx`) or the v2 key
`proxy_proto` (`agent/config/v2.mdx`). Rules:
- Version 1 (section 2.1) is one ASCII line: `PROXY TCP4 <src> <dst> <srcport> <dstport>\\r\\n`
  (TCP6 for IPv6; addresses in their usual text form, ports in decimal), at most 107 bytes.
  Version 2 (section 2.2) is binary: the 12-byte signature, 0x21 (version 2, command PROXY), the
  family and transport (0x11 TCP over IPv4, 0x21 TCP over IPv6), the length of what follows
  (big-endian), then source address, destination address, source port, destination port.
- The source is the public client's address and port, the destination the address and port of
  the agent's listener it connected to (the "proxy" side), both as the kernel reports them.
- Both addresses of one header are of one family. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
  from a dual-stack listener) is written as IPv4 when the other one can be; when the families
  still differ, the IPv4 one is written IPv4-mapped so both fit TCP6. An IPv6 zone is dropped.
- An address the header cannot carry (no address, a Unix socket) gives `PROXY UNKNOWN\\r\\n` in
  version 1 and, in version 2, command LOCAL with family UNSPEC and no address block, as HAProxy
  itself sends (make_proxy_line_v2): the receiver keeps the connection's own addresses.
- No TLVs are sent.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_PROXY = 0x21  # version 2 (high nibble), command PROXY (low nibble)
_V2_LOCAL = 0x20  # version 2, command LOCAL
_V2_TCP4 = 0x11  # AF_INET, STREAM
_V2_TCP6 = 0x21  # AF_INET6, STREAM
_V2_UNSPEC = 0x00
_V1_UNKNOWN = b"PROXY UNKNOWN\r\n"
_V2_UNKNOWN = V2_SIGNATURE + struct.pack("!BBH", _V2_LOCAL, _V2_UNSPEC, 0)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def proxy_header(version: int, source: Any, destination: Any) -> bytes:
    """The header for a connection from `source` to `destination`.

    `version` is 1 or 2; `source` and `destination` are socket addresses as asyncio's
    `get_extra_info("peername")` / `("sockname")` give them: `(host, port)` or
    `(host, port, flowinfo, scope_id)`, or None (or anything else: UNKNOWN). Raises ValueError for
    another version.
    """
    if version not in (1, 2):
        raise ValueError(f"PROXY protocol version {version}: 1 or 2")
    pair = _endpoints(source, destination)
    if pair is None:
        return _V1_UNKNOWN if version == 1 else _V2_UNKNOWN
    (src, src_port), (dst, dst_port) = pair
    if version == 1:
        family = b"TCP4" if src.version == 4 else b"TCP6"
        return b"PROXY %s %s %s %d %d\r\n" % (family, str(src).encode(), str(dst).encode(), src_port, dst_port)
    block = src.packed + dst.packed + struct.pack("!HH", src_port, dst_port)
    family_byte = _V2_TCP4 if src.version == 4 else _V2_TCP6
    return V2_SIGNATURE + struct.pack("!BBH", _V2_PROXY, family_byte, len(block)) + block


def _endpoints(source: Any, destination: Any) -> tuple[tuple[Address, int], tuple[Address, int]] | None:
    """Both ends as (address, port) of one family, or None when either cannot be written."""
    src, dst = _endpoint(source), _endpoint(destination)
    if src is None or dst is None:
        return None
    src_ip, dst_ip = _unmapped(src[0]), _unmapped(dst[0])
    if src_ip.version != dst_ip.version:
        src_ip, dst_ip = _as_v6(src_ip), _as_v6(dst_ip)
    return (src_ip, src[1]), (dst_ip, dst[1])


def _endpoint(address: Any) -> tuple[Address, int] | None:
    if not isinstance(address, tuple) or len(address) < 2:
        return None
    host, port = address[0], address[1]
    if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port <= 65535:
        return None
    try:
        return ipaddress.ip_address(host.partition("%")[0]), port
    except ValueError:
        return None


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _as_v6(address: Address) -> ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + address.packed)
    return address
