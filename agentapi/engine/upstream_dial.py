"""Dialling a tunnel's local service: `localhost` means the loopback of either IP family.

A local service may listen on 127.0.0.1 only (Python's http.server) or on ::1 only (Node 17+
binds `localhost` to ::1 by default), and /etc/hosts often names only one of them. Like a browser,
the agent tries both loopback addresses for `localhost` (RFC 6761 6.3: the name is the loopback),
the one that answered last time first, so a steady service costs one connect per connection.
An address that accepted the connection but failed the TLS handshake (a certificate refused by
`upstream_tls_verify`, a service that does not speak TLS) is the answer: its error is raised at
once, never hidden behind the other loopback's "connection refused".
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TypeVar

_LOOPBACKS = ("127.0.0.1", "::1")

# host:port -> the loopback address that accepted last; shared by every tunnel and replay.
_last_good: dict[tuple[str, int], str] = {}

P = TypeVar("P", bound=asyncio.BaseProtocol)


def candidate_hosts(host: str, port: int) -> list[str]:
    """The addresses to try for `host`, in order: both loopbacks for localhost, else the host."""
    if host.lower().rstrip(".") != "localhost":
        return [host]
    preferred = _last_good.get((host, port), _LOOPBACKS[0])
    return [preferred, *(address for address in _LOOPBACKS if address != preferred)]


async def dial(
    factory: Callable[[], P], host: str, port: int, *, ssl_context: ssl.SSLContext | None
) -> tuple[asyncio.BaseTransport, P]:
    """Open a connection to host:port; for localhost, the first loopback address that accepts.

    Raises the OSError of the last address tried when none accepts (ConnectionRefusedError when
    nothing listens on either family), or the ssl.SSLError of a failed handshake.
    """
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for address in candidate_hosts(host, port):
        try:
            connection = await loop.create_connection(
                factory, address, port, ssl=ssl_context, server_hostname=host if ssl_context else None
            )
        except ssl.SSLError:
            _last_good[(host, port)] = address  # it answered; its TLS is what failed
            raise
        except OSError as failure:
            error = failure
            continue
        if address != host:
            _last_good[(host, port)] = address
        return connection
    assert error is not None
    raise error


def dial_error(where: str, error: OSError) -> str:
    """What the client's 502 page says when dialling `where` (host:port) failed.

    The wording starts "failed to connect to the local service": http1.agent_error_code gives such
    a page ngrok's ERR_NGROK_8012.
    """
    if isinstance(error, ConnectionRefusedError):
        return f"failed to connect to the local service at {where}: connection refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        why = getattr(error, "verify_message", None) or getattr(error, "reason", None) or error
        return f"failed to connect to the local service at {where}: its TLS certificate was refused (upstream_tls_verify): {why}"
    if isinstance(error, ssl.SSLError):
        why = getattr(error, "reason", None) or error
        return f"failed to connect to the local service at {where}: TLS handshake failed: {why}"
    return f"failed to connect to the local service at {where}: {error.strerror or error}"
