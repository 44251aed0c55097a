"""TCP and TLS (passthrough) tunnels: accept, dial the local service, pipe bytes both ways.

Rules:
- Reading on one side pauses while the other side's write buffer is full; each pause is paired
  with one resume.
- Bytes and an EOF that arrive on either side before the two are linked (the client speaking
  before the dial completes, or a service that speaks first, as SSH and MySQL do) are kept and
  passed on once they are; the client's side pauses past `_PENDING_LIMIT`.
- An EOF is passed on as a half-close; the pipe closes once both directions are done.
- A connection counts in the metrics once the local dial succeeded (go-metrics `conns`); its
  lifetime is recorded at close.
- Traffic Policy: on_tcp_connect runs before the dial (connection_policy.py). deny, restrict-ips
  and close-connection close the connection unread; forward-internal dials the internal TCP/TLS
  endpoint's service instead (404-less: an unknown internal URL closes the connection, or, with
  `on_error: continue`, dials this tunnel's own service).
- With `proxy_protocol` (of the tunnel whose service is dialled), the PROXY header of the public
  client (proxy_protocol.py) is the first thing written to the service, before any byte the
  client sent: one per connection, as each public connection gets its own upstream one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .connection_policy import conn_facts, run_connect_phase
from .metrics import TunnelMetrics
from .policy.facts import EndpointFacts
from .policy.outcomes import ForwardInternal
from .proxy_protocol import proxy_header
from .tunnel_spec import TunnelSpec
from .upstream_dial import dial

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 10.0
_PENDING_LIMIT = 256 * 1024


class _Side(asyncio.Protocol):
    """One end of a pipe; `peer` is the other end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self.got_eof = False
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            # Before the local dial completes (uvloop ignores pause_reading in connection_made).
            self.pending.append(data)
            if sum(map(len, self.pending)) > _PENDING_LIMIT:
                self.pause()
        else:
            peer.transport.write(data)

    def pause(self) -> None:
        if self.transport is not None and not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def link(self, peer: _Side) -> None:
        """Join this side to `peer`; pass on what this side received before."""
        self.peer = peer
        if peer.transport is not None:
            for data in self.pending:
                peer.transport.write(data)
        self.pending.clear()
        self.resume()

    def eof_received(self) -> bool | None:
        self.got_eof = True
        peer = self.peer
        if peer is None and not self.closed:
            return True  # still dialling: the EOF is passed on once the local side is there
        if peer is None or peer.transport is None or peer.got_eof or not peer.transport.can_write_eof():
            return None  # both directions are done: close
        peer.transport.write_eof()
        return True  # keep the other direction open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class PublicSide(_Side):
    def __init__(
        self,
        spec: TunnelSpec,
        metrics: TunnelMetrics,
        connections: set[PublicSide],
        endpoint: EndpointFacts | None = None,
        find_internal: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.metrics = metrics
        self.connections = connections
        self.endpoint = endpoint
        # forward-internal: url -> an internal RunningTunnel of this agent of the same protocol
        # (its spec says where to dial; its own policy runs first)
        self.find_internal = find_internal
        self.opened_ns = 0
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connections.add(self)
        target = self.spec  # whose service is dialled
        policy = self.spec.policy
        if policy is not None and self.endpoint is not None:
            find = self.find_internal
            connect = run_connect_phase(
                policy, conn_facts(transport), self.endpoint, lambda url: find is not None and find(url) is not None
            )
            outcome = connect.outcome
            if isinstance(outcome, ForwardInternal):
                internal = self.find_internal(outcome.url) if self.find_internal is not None else None
                if internal is not None and internal.spec.policy is not None and internal.endpoint is not None:
                    # The internal endpoint's own on_tcp_connect runs too (ngrok's forward-internal).
                    inner = run_connect_phase(internal.spec.policy, connect.conn, internal.endpoint)
                    if inner.outcome is not None:
                        log.info("tunnel %s: the internal endpoint's policy closed a connection", self.spec.name)
                        self.close()
                        return
                if internal is not None:
                    target = internal.spec
                elif outcome.on_error != "continue":
                    log.info(
                        "tunnel %s: forward-internal to %s: no such internal endpoint", self.spec.name, outcome.url
                    )
                    self.close()
                    return
            elif outcome is not None:
                log.info(
                    "tunnel %s: the traffic policy closed a connection from %s", self.spec.name, connect.conn.client_ip
                )
                self.close()
                return
        asyncio.get_running_loop().create_task(self._dial(target))

    async def _dial(self, target: TunnelSpec) -> None:
        upstream = target.upstream
        try:
            _, local = await asyncio.wait_for(dial(_Side, upstream.host, upstream.port, ssl_context=None), DIAL_TIMEOUT)
        except (OSError, TimeoutError) as error:
            log.info("tunnel %s: dial %s failed: %s", self.spec.name, upstream.netloc, error)
            self.close()
            return
        if self.closed:
            local.close()
            return
        self.opened_ns = time.perf_counter_ns()
        self.counted = True
        self.metrics.conn_opened()
        if target.proxy_protocol and local.transport is not None and self.transport is not None:
            peer, sockname = self.transport.get_extra_info("peername"), self.transport.get_extra_info("sockname")
            local.transport.write(proxy_header(target.proxy_protocol, peer, sockname))
        self.link(local)
        local.link(self)
        for side in (self, local):
            other = side.peer
            if side.got_eof and other is not None and other.transport is not None and other.transport.can_write_eof():
                other.transport.write_eof()
        if self.got_eof and local.got_eof:
            self.close()  # both directions ended before they were linked

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.connections.discard(self)
        if self.counted:
            self.counted = False
            self.metrics.conn_closed(time.perf_counter_ns() - self.opened_ns)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
