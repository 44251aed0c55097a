"""A public connection's facts for Traffic Policy, and its on_tcp_connect phase (HTTP, TCP and
TLS endpoints alike: ngrok's `traffic-policy/how-it-works.mdx`).

Rules:
- `conn.*` comes from the socket: the client's and the listener's addresses, the accept time,
  and for a TLS public side its version, cipher, SNI and ALPN.
- on_tcp_connect ends with CloseConnection (deny, restrict-ips, close-connection): the connection
  is closed before a byte is read. A failing policy closes it too, with a log line. forward-internal
  there is for TCP/TLS endpoints (tcp_pipe.py); an HTTP endpoint refuses it at load.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .policy.actions.base import TCP, PhaseRun
from .policy.document import Policy
from .policy.errors import PolicyRuntimeError
from .policy.facts import ConnFacts, EndpointFacts
from .policy.outcomes import CloseConnection, Outcome
from .policy.runner import run_phase
from .policy.trace import TraceEntry
from .policy.variables import Scope

log = logging.getLogger(__name__)


def conn_facts(transport: asyncio.BaseTransport) -> ConnFacts:
    peer = transport.get_extra_info("peername") or ("", 0)
    local = transport.get_extra_info("sockname") or ("", 0)
    tls: dict[str, str] | None = None
    ssl_object = transport.get_extra_info("ssl_object")
    if isinstance(ssl_object, (ssl.SSLObject, ssl.SSLSocket)):
        cipher = ssl_object.cipher()
        tls = {
            "version": ssl_object.version() or "",
            "cipher": cipher[0] if cipher else "",
            "sni": getattr(ssl_object, "server_hostname", None) or "",
            "alpn": ssl_object.selected_alpn_protocol() or "",
        }
    return ConnFacts(
        client_ip=str(peer[0]),
        client_port=int(peer[1]),
        server_ip=str(local[0]),
        server_port=int(local[1]),
        start=time.time(),
        tls=tls,
    )


@dataclass(slots=True)
class ConnectOutcome:
    conn: ConnFacts
    outcome: Outcome | None = None
    trace: list[TraceEntry] = field(default_factory=list)


def run_connect_phase(
    policy: Policy,
    conn: ConnFacts,
    endpoint: EndpointFacts,
    internal_exists: Callable[[str], bool] = lambda url: False,
) -> ConnectOutcome:
    """Run on_tcp_connect for a new connection; never raises (a failure closes the connection)."""
    result = ConnectOutcome(conn=conn)
    if not policy.uses(TCP):
        return result
    scope = Scope(conn=conn, endpoint=endpoint)
    run = PhaseRun(phase=TCP, scope=scope, conn=conn, trace=result.trace, internal_exists=internal_exists)
    try:
        result.outcome = run_phase(policy, run)
    except PolicyRuntimeError as error:
        log.warning("tunnel %s: traffic policy failed on connect: %s", endpoint.name, error)
        result.trace.append(TraceEntry(TCP, run.rule, "error", str(error)[:300], True))
        result.outcome = CloseConnection()
    except Exception:  # an action's own bug must not take the agent down
        log.exception("tunnel %s: traffic policy action crashed on connect", endpoint.name)
        result.outcome = CloseConnection()
    return result
