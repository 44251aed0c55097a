"""The public side of an HTTP tunnel: one asyncio Protocol per accepted connection, which parses
requests and keeps their exchanges in order.

The parts: an exchange's own progress (forwarding, the response, retries, the capture) is
http_exchange.py; the connections to the local service and their pool are upstream.py; who paused
whom is flow_control.py; the endpoint's Traffic Policy is exchange_policy.py and
connection_policy.py; the bytes themselves are http1.py.

Rules:
- Each request head starts an Exchange. One exchange at a time per connection: pipelined requests
  wait their turn in `waiting` (reading paused while one waits, their body bytes kept in order)
  and begin in order as the one before them finishes (a loop, not recursion: thousands may be
  queued).
- Bytes llhttp refuses (400, 431) inside a request are answered at once; after complete requests,
  once those are answered. A request with more than one Host field is refused the same way
  (RFC 9112 3.2): the policy and the service could each believe a different one. A service's response under way is never followed by an error page:
  the connection is closed instead.
- A request head must arrive whole within the head timeout (408, like Go's ReadHeaderTimeout); an
  idle keep-alive connection is closed after the idle timeout. The engine's sweep checks both
  about once a second; neither applies to a pipe.
- The bytes after an Upgrade request are held (reading paused) until the service answers: its 101
  turns the connection into a raw pipe both ways; anything else is forwarded and the connection
  closed, so those bytes never go to an upstream that returns to the pool.
- A connection whose on_tcp_connect phase ends it (deny, restrict-ips, close-connection) is
  closed before a byte is read.
- The connection closes after a response when the request asked for it (Connection: close,
  HTTP/1.0 without keep-alive), when the request was not read whole, after an Upgrade, or after
  the agent's own error page.
- Half-close: a client that ends its side after whole requests still gets their responses, then
  the connection closes; one that ends in the middle of a request is let go on both sides.
- The client going away abandons the current exchange (recorded with what crossed; 499 when
  nothing was answered); the waiting ones were never forwarded and are not recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .capture_id import CaptureIdFactory
from .capture_record import CaptureRecord
from .capture_sink import CaptureSink
from .connection_policy import conn_facts, run_connect_phase
from .flow_control import WAITING, FlowControl
from .http1 import Body, ProtocolError, RequestEnd, RequestHead, RequestParser, Upgrade, error_response
from .http_exchange import AWAITING, COMPLETE, RECEIVING, STARTED, Exchange
from .metrics import TunnelMetrics
from .policy.document import Policy
from .policy.facts import ConnFacts, EndpointFacts
from .policy.trace import TraceEntry
from .tunnel_spec import TunnelSpec
from .upstream import UpstreamPool

_NO_CONN = ConnFacts(client_ip="", client_port=0, server_ip="", server_port=0, start=0.0)  # before connection_made
# How early (seconds) the response timer may fire and still count as due: libuv's millisecond
# timers round, and re-arming for a fraction of a millisecond would spin the loop.
_TIMER_SLACK = 0.001
# The most of a request body the policy reads for an action that needs it (verify-webhook).
POLICY_BODY_LIMIT = 10 * 1024 * 1024


@dataclass(slots=True)
class TunnelContext:
    """What every connection of one HTTP tunnel shares."""

    spec: TunnelSpec
    metrics: TunnelMetrics
    sink: CaptureSink | None
    ids: CaptureIdFactory
    capture_limit: int
    upstream_timeout: float
    head_timeout: float = 30.0
    idle_timeout: float = 90.0
    response_head_limit: int = 64 * 1024
    public_scheme: str = "http"
    policy_body_limit: int = POLICY_BODY_LIMIT
    # The endpoint as policies see it (set once the listener is bound) and how forward-internal
    # finds an internal endpoint of this agent by URL.
    endpoint: EndpointFacts = field(init=False)
    find_internal: Callable[[str], TunnelContext | None] = lambda url: None
    pool: UpstreamPool = field(init=False)
    connections: set[ClientConnection] = field(default_factory=set)
    # Per-request constants, worked out once.
    host_header: bytes | None = field(init=False)
    loop: asyncio.AbstractEventLoop = field(init=False)

    def __post_init__(self) -> None:
        self.public_scheme = "https" if self.spec.public_tls else "http"
        self.pool = UpstreamPool(self.spec, response_head_limit=self.response_head_limit)
        self.host_header = self.spec.forward_host
        self.loop = asyncio.get_running_loop()
        self.endpoint = EndpointFacts(
            id="", name=self.spec.name, url="", host="", port=0, protocol=self.spec.proto, upstream_url=self.spec.addr
        )

    @property
    def policy(self) -> Policy | None:
        return self.spec.policy

    def has_internal(self, url: str) -> bool:
        """Whether forward-internal could reach `url`: an internal HTTP endpoint of this agent."""
        return self.find_internal(url) is not None

    @property
    def inspect(self) -> bool:
        return self.sink is not None and self.spec.inspect

    def sweep(self) -> None:
        """Time out slow request heads and idle keep-alive connections; drop stale upstreams."""
        now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeouts(now, head_timeout=self.head_timeout, idle_timeout=self.idle_timeout)
        self.pool.sweep()


class ClientConnection(asyncio.Protocol):
    """A connection accepted on the tunnel's public listener."""

    def __init__(self, context: TunnelContext) -> None:
        self.ctx = context
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        # Traffic Policy: the connection's facts, and its on_tcp_connect steps (each capture's first).
        self.conn = _NO_CONN
        self.conn_trace: list[TraceEntry] = []
        self.parser = RequestParser()
        self.flow = FlowControl()
        self.current: Exchange | None = None
        self.waiting: deque[Exchange] = deque()
        self.piping = False  # after a 101: raw bytes both ways
        self.holding: Exchange | None = None  # an Upgrade request waiting for the upstream's answer
        self.broken: ProtocolError | None = None  # bad bytes after good requests: answer those first
        self.closed = False
        self.client_eof = False
        self.advancing = False
        self.opened_ns = 0
        self.last_active = 0.0
        self.head_since = 0.0  # when the bytes of a not yet complete request head started
        # The response timeout's one timer for all the connection's exchanges (see watch_response).
        self.response_timer: asyncio.TimerHandle | None = None
        self.response_timer_due = 0.0

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport.
        self.transport = self.flow.transport = transport  # type: ignore[assignment]
        self.opened_ns = time.perf_counter_ns()
        self.last_active = time.monotonic()
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.ctx.connections.add(self)
        self.ctx.metrics.conn_opened()
        policy = self.ctx.policy
        if policy is not None:
            self.conn = conn_facts(transport)
            connect = run_connect_phase(policy, self.conn, self.ctx.endpoint)
            self.conn_trace = connect.trace
            if connect.outcome is not None:
                self.close()  # on_tcp_connect refused it: nothing is read

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.flow.transport = None
        if self.response_timer is not None:
            self.response_timer.cancel()
            self.response_timer = None
        self.ctx.connections.discard(self)
        self.ctx.metrics.conn_closed(time.perf_counter_ns() - self.opened_ns)
        if self.current is not None:
            self.current.abandon()
        self.current = None
        self.waiting.clear()  # never forwarded, so never recorded

    def data_received(self, data: bytes) -> None:
        self.last_active = now = time.monotonic()
        if self.piping:
            if self.current is not None:
                self.current.send(data)
            return
        if self.holding is not None:
            self._hold(self.holding, data)
            return
        if self.broken is not None:
            return  # the rest of a stream we already refused
        if self.current is None and not self.head_since:
            self.head_since = now
        for event in self.parser.feed(data):
            # By exact type, commonest first: one type() call instead of an isinstance per branch.
            # mypy does not narrow `event` through `kind`, hence the ignores below.
            kind = type(event)
            if kind is Body:
                # Body bytes and ends belong to the newest request: the last waiting, else current.
                exchange = self.waiting[-1] if self.waiting else self.current
                if exchange is not None:
                    exchange.body(event.data)  # type: ignore[union-attr]
            elif kind is RequestHead:
                self.head_since = 0.0
                if event.count(b"host") > 1:  # type: ignore[union-attr]
                    # RFC 9112 3.2: a 400. Which Host would a policy or the service believe?
                    self._broken(ProtocolError(400, "the request has more than one Host field"))
                    return
                self._head(event)  # type: ignore[arg-type]
            elif kind is RequestEnd:
                exchange = self.waiting[-1] if self.waiting else self.current
                if exchange is not None:
                    exchange.request_end()
            elif kind is Upgrade:
                self._upgrade(event.rest)  # type: ignore[union-attr]
        if self.parser.error is not None and self.broken is None and not self.closed:
            self._broken(self.parser.error)

    def eof_received(self) -> bool | None:
        self.client_eof = True
        exchange = self.current
        if exchange is None:
            return None
        if exchange.request is RECEIVING and not self.piping:
            # Gone in the middle of its request: nothing can complete it; let go of both sides.
            return None
        return True  # a half-closed client may still want its response; close once it is written

    def pause_writing(self) -> None:
        exchange = self.current
        self.flow.client_full(exchange.upstream if exchange is not None else None)

    def resume_writing(self) -> None:
        self.flow.client_drained()

    # --- timeouts (the engine's sweep calls this about once a second) -----------------------
    def check_timeouts(self, now: float, *, head_timeout: float, idle_timeout: float) -> None:
        if self.closed or self.piping:
            return
        if self.head_since and now - self.head_since > head_timeout:
            # A request head that never completes (slowloris): 408, like Go's ReadHeaderTimeout.
            self._refuse(ProtocolError(408, f"the request head did not arrive within {head_timeout:g} s"))
        elif self.current is None and not self.waiting and now - self.last_active > idle_timeout:
            self.close()

    def watch_response(self, deadline: float) -> None:
        """Make sure the response timer fires by `deadline` (loop time, seconds).

        One timer serves every exchange of the connection: a timer per request (call_later, then
        cancel at the first byte of the answer) cost ~1.8 us of the ~20 us a keep-alive request
        costs. An exchange's `deadline` is set when its request ends and cleared when the answer
        starts; a timer already due sooner is kept, since on firing it looks at the current
        exchange's deadline and re-arms for a later one.
        """
        timer = self.response_timer
        if timer is not None:
            if self.response_timer_due <= deadline:
                return
            timer.cancel()  # a shorter timeout (forward-internal to another endpoint's)
        self.response_timer_due = deadline
        self.response_timer = self.ctx.loop.call_at(deadline, self._response_timer_fired)

    def _response_timer_fired(self) -> None:
        self.response_timer = None
        exchange = self.current
        if exchange is None or self.closed or not exchange.deadline:
            return
        # libuv's timers count whole milliseconds and may fire a fraction of one early.
        if self.ctx.loop.time() + _TIMER_SLACK >= exchange.deadline:
            exchange.response_timed_out()
        else:
            self.watch_response(exchange.deadline)

    # --- requests ---------------------------------------------------------------------------
    def _head(self, head: RequestHead) -> None:
        ctx = self.ctx
        record = None
        if ctx.sink is not None and ctx.spec.inspect:  # ctx.inspect, without the property call
            now = time.time()
            record = CaptureRecord(
                id=ctx.ids.new(now),
                tunnel_name=ctx.spec.name,
                remote_addr=self.client_ip,
                start=now,
                method=head.method.decode("ascii", "replace"),
                uri=head.target.decode("latin-1"),
                limit=ctx.capture_limit,
            )
        exchange = Exchange(self, head, record)
        if self.current is None:
            self.current = exchange
            exchange.begin()
        else:
            self.waiting.append(exchange)
            self.flow.pause(WAITING)

    def _upgrade(self, rest: bytes) -> None:
        exchange = self.waiting[-1] if self.waiting else self.current
        if exchange is None or exchange.response < AWAITING:
            return  # answered by the agent: the connection closes after that answer
        exchange.held = []
        self.holding = exchange
        if rest:
            self._hold(exchange, rest)

    def _hold(self, exchange: Exchange, data: bytes) -> None:
        assert exchange.held is not None
        exchange.held.append(data)
        self.flow.pause(WAITING)  # bounded: one read at most until the upstream answers

    def _broken(self, error: ProtocolError) -> None:
        """Bad bytes: refuse now if they are inside a request, else after the complete ones."""
        self.broken = error
        if self.waiting and self.waiting[-1].request is RECEIVING:
            self.waiting.pop()  # never begun, never recorded
        if self.current is None or self.current.request is RECEIVING:
            self._refuse(error)

    # --- endings (called by the exchange) ---------------------------------------------------
    def finish(self, exchange: Exchange, *, keep_alive: bool) -> None:
        exchange.deadline = 0.0
        if exchange.record is not None:
            exchange.complete_record()
        if exchange is not self.current:
            return
        self.current = None
        self.holding = None
        if not keep_alive or self.piping or (self.client_eof and not self.waiting):
            self.close()
            return
        if self.waiting or self.broken is not None:
            self._advance()
        elif self.flow.reasons & WAITING:
            self.flow.resume(WAITING)  # what _advance does when nothing waits

    def start_pipe(self, exchange: Exchange, held: list[bytes]) -> None:
        """The service accepted the Upgrade: raw bytes both ways from now on."""
        self.piping = True
        self.holding = None
        for data in held:
            exchange.send(data)
        self.flow.resume(WAITING)

    def _advance(self) -> None:
        """Start the waiting exchanges in turn (a loop, not recursion: thousands may be queued)."""
        if self.advancing:
            return
        self.advancing = True
        try:
            while self.current is None and not self.closed:
                if not self.waiting:
                    if self.broken is not None:
                        self._refuse(self.broken)
                    elif self.holding is None:
                        self.flow.resume(WAITING)
                    return
                exchange = self.current = self.waiting.popleft()
                if self.client_eof and exchange.request is RECEIVING:
                    self.close()  # the client left in the middle of this one
                    return
                if exchange.held is not None:
                    self.holding = exchange
                exchange.begin()
                if exchange.response < AWAITING and exchange.request is COMPLETE and exchange is self.current:
                    # Answered by the agent on the spot: `finish` records it and closes if asked.
                    self.finish(exchange, keep_alive=exchange.answer_keeps_alive)
        finally:
            self.advancing = False

    def _refuse(self, error: ProtocolError) -> None:
        exchange = self.current
        if exchange is not None and exchange.response >= STARTED:
            self.close()
            return
        if exchange is not None:
            exchange.abandon()
            self.current = None
        if self.transport is not None and not self.closed:
            self.transport.write(error_response(error.status, error.detail))
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
