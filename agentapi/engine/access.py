"""Who may send a request through an HTTP tunnel: pure functions over a request head and what is
known of its connection. No sockets, no state: bytes and facts in, "pass" or the agent's answer out.

Rules:
- `check_request(spec, head, facts)` is the one hook the proxy calls before a request goes
  upstream; it returns None (pass) or a `LocalAnswer`. Traffic Policy plugs in here next.
- IP restriction (`allow_cidrs`, `deny_cidrs`) is decided once per connection, from its peer
  address (`connection_facts`): a deny match refuses, then an allow list, when there is one, must
  match; an address that does not parse is refused whenever a restriction is set. Each request on
  a refused connection is answered 403; the connection stays open if the request asked for
  keep-alive.
- Basic auth (`basic_auth`): the Authorization field must be `Basic` with one of the tunnel's
  user:password pairs, compared as bytes in constant time over every pair (no early exit); else
  401 with `WWW-Authenticate: Basic realm="ngrok"`.
- The IP check comes first: a refused address learns nothing about credentials.
- A request answered here never reaches the service and is not captured; its body is read and
  dropped.
- Cheap when unused: `facts.checked` says whether any rule can refuse a request on the connection;
  the proxy calls `check_request` only then, so a tunnel without rules costs no call per request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass

from .http1 import RequestHead, error_response
from .tunnel_spec import TunnelSpec


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What is known of a public connection when one of its requests is checked."""

    client_ip: str
    ip_allowed: bool
    # Whether some rule can refuse a request on this connection; when not, nothing is called.
    checked: bool


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """The agent's own answer to a request that does not pass."""

    status: int
    detail: str
    headers: bytes = b""  # extra header lines, each ending in CRLF

    def page(self, *, keep_alive: bool) -> bytes:
        page = error_response(self.status, self.detail, keep_alive=keep_alive)
        if self.headers:
            page = page.replace(b"\r\n\r\n", b"\r\n" + self.headers + b"\r\n", 1)
        return page


FORBIDDEN = LocalAnswer(403, "Forbidden: your IP address is not allowed.")
AUTHENTICATION_REQUIRED = LocalAnswer(401, "Authentication required.", b'WWW-Authenticate: Basic realm="ngrok"\r\n')


def connection_facts(spec: TunnelSpec, client_ip: str) -> ConnectionFacts:
    allowed = ip_allowed(spec, client_ip)
    return ConnectionFacts(client_ip=client_ip, ip_allowed=allowed, checked=not allowed or bool(spec.basic_auth))


def check_request(spec: TunnelSpec, head: RequestHead, facts: ConnectionFacts) -> LocalAnswer | None:
    """None when the request may go to the service, else the agent's answer to it."""
    if not facts.ip_allowed:
        return FORBIDDEN
    if spec.basic_auth and not basic_auth_passes(spec.basic_auth, head):
        return AUTHENTICATION_REQUIRED
    return None


def ip_allowed(spec: TunnelSpec, ip: str) -> bool:
    if not spec.allow_cidrs and not spec.deny_cidrs:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if any(address in net for net in spec.deny_cidrs):
        return False
    return not spec.allow_cidrs or any(address in net for net in spec.allow_cidrs)


def basic_auth_passes(credentials: tuple[tuple[str, str], ...], head: RequestHead) -> bool:
    value = head.header(b"authorization")
    if not value or value[:6].lower() != b"basic ":
        return False
    try:
        user, _, password = base64.b64decode(value[6:].strip(), validate=True).partition(b":")
    except binascii.Error:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str. No early exit: constant time.
    return any(
        hmac.compare_digest(user, u.encode()) & hmac.compare_digest(password, p.encode()) for u, p in credentials
    )
