"""The socket side of an HTTP tunnel: one asyncio Protocol per public connection, a small pool of
keep-alive connections to the local service, and the tee into captures.

Rules:
- Bodies stream both ways; a full write buffer on one side pauses reading on the other
  (pause_writing/resume_writing), so memory stays bounded whatever the body size.
- A request head is rebuilt (hop-by-hop fields dropped, X-Forwarded-* added); its body is
  forwarded as llhttp hands it over (re-chunked if it came chunked). The response is forwarded as the
  upstream's bytes, untouched; llhttp only tells where it ends.
- One exchange at a time per public connection; pipelined requests wait their turn (reading is
  paused while one waits). Bytes llhttp refuses after good requests are answered with an error
  once those are answered.
- The response timeout runs from the end of the request (uploads take what they take); a request
  head must complete within the head timeout (408) and an idle keep-alive connection is closed
  after the idle timeout (both checked by a sweep about once a second).
- A pooled upstream connection that the local service dropped as it was reused is tried once more
  for replayable requests (GET, HEAD, OPTIONS, TRACE or an Idempotency-Key) sent without a body.
- The upstream failing before it answered (refused, reset, malformed, silent past the timeout) gives
  the client a 502/504 page, recorded as that exchange's response; after it answered, the client
  connection is closed as the only honest signal.
- The bytes after an Upgrade request wait (reading paused) for the upstream's answer: a 101 turns
  both sides into a raw byte pipe; anything else is forwarded and the public connection closed,
  never leaving those bytes on a connection that goes back to the pool.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hmac
import ipaddress
import logging
import select
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field

from .capture_id import CaptureIdFactory
from .capture_record import CaptureRecord
from .capture_sink import CaptureSink
from .http1 import (
    CLIENT_CLOSED_REQUEST,
    LAST_CHUNK,
    Body,
    ProtocolError,
    RequestEnd,
    RequestHead,
    RequestParser,
    ResponseParser,
    Upgrade,
    chunk,
    error_response,
    forwarded_head,
    is_close_delimited,
)
from .metrics import TunnelMetrics
from .tunnel_spec import TunnelSpec
from .upstream_dial import dial

log = logging.getLogger(__name__)

MAX_IDLE_UPSTREAMS = 64
IDLE_UPSTREAM_SECONDS = 20.0
# Request bytes kept until the response starts, so a request that a reused connection lost before
# the service read it can be sent again on a fresh one; a larger request is not retried.
RETRY_KEEP_BYTES = 64 * 1024
# After a reused connection ends with no answer, how long to wait for the reset that tells the
# service's socket was already closed when the request arrived (so it never read it).
RESET_GRACE_SECONDS = 0.2
# Linux: acknowledge now instead of up to 40 ms later (see UpstreamConnection.data_received).
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

# Reasons the public connection's reading is paused; reading resumes when none is left.
_PAUSE_UPSTREAM_FULL = 1
_PAUSE_WAITING = 2

# Methods a request may be sent twice with (Go's Transport rule); others need an Idempotency-Key.
_REPLAYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})


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

    @property
    def inspect(self) -> bool:
        return self.sink is not None and self.spec.inspect

    def sweep(self) -> None:
        """Time out slow request heads and idle keep-alive connections; drop stale upstreams."""
        now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeouts(now, head_timeout=self.head_timeout, idle_timeout=self.idle_timeout)
        self.pool.sweep()


def upstream_tls(spec: TunnelSpec) -> ssl.SSLContext | None:
    """How to speak TLS to an https:// addr: unverified, as ngrok does (local services are
    usually self-signed)."""
    if spec.upstream.scheme != "https":
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamPool:
    """Idle keep-alive connections to the local service, newest reused first."""

    def __init__(self, spec: TunnelSpec, *, response_head_limit: int = 64 * 1024) -> None:
        self._spec = spec
        self.response_head_limit = response_head_limit
        self._idle: list[tuple[float, UpstreamConnection]] = []
        self.closed = False
        self._ssl = upstream_tls(spec)

    def take(self) -> UpstreamConnection | None:
        while self._idle:
            _, upstream = self._idle.pop()
            # Readable while idle: the service closed it (or sent bytes nobody asked for) and the
            # loop has not seen it yet. Never hand such a connection a request.
            if upstream.idle() and not upstream.readable():
                upstream.reused = True
                return upstream
            upstream.close()
        return None

    def give_back(self, upstream: UpstreamConnection) -> None:
        if self.closed or len(self._idle) >= MAX_IDLE_UPSTREAMS or not upstream.idle():
            upstream.close()
            return
        self._idle.append((time.monotonic(), upstream))

    def discard(self, upstream: UpstreamConnection) -> None:
        self._idle = [(t, u) for t, u in self._idle if u is not upstream]

    def sweep(self) -> None:
        """Close connections idle for long: the local service would drop them soon anyway."""
        horizon = time.monotonic() - IDLE_UPSTREAM_SECONDS
        keep = []
        for idle_since, upstream in self._idle:
            if idle_since < horizon:
                upstream.close()
            else:
                keep.append((idle_since, upstream))
        self._idle = keep

    def close(self) -> None:
        self.closed = True  # a dial finishing after the tunnel stopped closes its connection
        for _, upstream in self._idle:
            upstream.close()
        self._idle = []

    async def connect(self, timeout: float) -> UpstreamConnection:
        upstream = self._spec.upstream
        _, protocol = await asyncio.wait_for(
            dial(lambda: UpstreamConnection(self), upstream.host, upstream.port, ssl_context=self._ssl), timeout
        )
        return protocol


class Exchange:
    """One request/response on a public connection."""

    __slots__ = (
        "answered_early",
        "answered_locally",
        "body_sent",
        "buffered",
        "forwarded",
        "head",
        "head_sent",
        "held",
        "record",
        "recorded",
        "request_done",
        "response_finished",
        "response_started",
        "retried",
        "sent",
        "sent_size",
        "started_ns",
        "timeout",
        "upstream",
    )

    def __init__(self, head: RequestHead, record: CaptureRecord | None) -> None:
        self.head = head
        self.record = record
        self.recorded = False  # handed to the sink (only exchanges that began)
        self.started_ns = time.perf_counter_ns()
        self.head_sent = False
        self.request_done = False
        self.buffered: list[bytes] = []
        # Bytes after an Upgrade request's head: they belong to the new protocol, so they wait
        # for the upstream's 101 and are dropped if it declines.
        self.held: list[bytes] | None = None
        self.upstream: UpstreamConnection | None = None
        self.response_started = False
        self.answered_early = False  # the upstream answered before the whole request reached it
        self.answered_locally = False
        self.timeout: asyncio.TimerHandle | None = None
        self.forwarded = b""
        self.body_sent = False
        self.retried = False
        self.response_finished = False
        # What went upstream so far, kept (up to RETRY_KEEP_BYTES) until the response starts.
        self.sent: list[bytes] | None = []
        self.sent_size = 0

    def keep_sent(self, data: bytes) -> None:
        sent = self.sent
        if sent is not None:
            self.sent_size += len(data)
            if self.sent_size > RETRY_KEEP_BYTES:
                self.sent = None
            else:
                sent.append(data)


class ClientConnection(asyncio.Protocol):
    """A connection accepted on the tunnel's public listener.

    Pause pairing: reading from this client pauses for the reasons in `paused` (bits); the
    upstream this client paused because its own write buffer was full is `paused_upstream`, and is
    resumed before it goes back to the pool, whatever happens in between.
    """

    def __init__(self, context: TunnelContext) -> None:
        self.ctx = context
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.parser = RequestParser()
        self.current: Exchange | None = None
        self.waiting: deque[Exchange] = deque()
        self.paused = 0
        self.piping = False  # after a 101: raw bytes both ways
        self.holding: Exchange | None = None  # an Upgrade request waiting for the upstream's answer
        self.broken: ProtocolError | None = None  # bad bytes after good requests: answer those first
        self.closed = False
        self.forbidden = False
        self.client_eof = False
        self.write_blocked = False
        self.paused_upstream: UpstreamConnection | None = None
        self.advancing = False
        self.opened_ns = 0
        self.last_active = 0.0
        self.head_since = 0.0  # when the bytes of a not yet complete request head started

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.opened_ns = time.perf_counter_ns()
        self.last_active = time.monotonic()
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.forbidden = not _ip_allowed(self.ctx.spec, self.client_ip)
        self.ctx.connections.add(self)
        self.ctx.metrics.conn_opened()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        self.ctx.metrics.conn_closed(time.perf_counter_ns() - self.opened_ns)
        if self.current is not None:
            self._abandon(self.current)
        self.current = None
        self.waiting.clear()  # never forwarded, so never recorded

    def data_received(self, data: bytes) -> None:
        self.last_active = now = time.monotonic()
        if self.piping:
            if self.current is not None:
                self._send(self.current, data)
            return
        if self.holding is not None:
            self._hold(self.holding, data)
            return
        if self.broken is not None:
            return  # the rest of a stream we already refused
        if self.current is None and not self.head_since:
            self.head_since = now
        events = self.parser.feed(data)
        for event in events:
            if isinstance(event, Body):
                self._body(event.data)
            elif isinstance(event, RequestHead):
                self.head_since = 0.0
                self._head(event)
            elif isinstance(event, RequestEnd):
                self._end()
            elif isinstance(event, Upgrade):
                self._upgrade(event.rest)
        if self.parser.error is not None and self.broken is None and not self.closed:
            self._broken(self.parser.error)

    def _broken(self, error: ProtocolError) -> None:
        """Bad bytes: refuse now if they are inside a request, else after the complete ones."""
        self.broken = error
        if self.waiting and not self.waiting[-1].request_done:
            self.waiting.pop()  # never begun, never recorded
        if self.current is None or not self.current.request_done:
            self._refuse(error)

    def eof_received(self) -> bool | None:
        self.client_eof = True
        exchange = self.current
        if exchange is None:
            return None
        if not exchange.request_done and not self.piping:
            # Gone in the middle of its request: nothing can complete it; let go of both sides.
            return None
        return True  # a half-closed client may still want its response; close once it is written

    def pause_writing(self) -> None:
        self.write_blocked = True
        exchange = self.current
        if exchange is not None and exchange.upstream is not None and self.paused_upstream is None:
            self.paused_upstream = exchange.upstream
            exchange.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._release_upstream_pause()

    def _release_upstream_pause(self) -> None:
        upstream, self.paused_upstream = self.paused_upstream, None
        if upstream is not None:
            upstream.resume_reading()

    # --- timeouts (the engine's sweep calls this about once a second) -----------------------
    def check_timeouts(self, now: float, *, head_timeout: float, idle_timeout: float) -> None:
        if self.closed or self.piping:
            return
        if self.head_since and now - self.head_since > head_timeout:
            # A request head that never completes (slowloris): 408, like Go's ReadHeaderTimeout.
            self._refuse(ProtocolError(408, f"the request head did not arrive within {head_timeout:g} s"))
        elif self.current is None and not self.waiting and now - self.last_active > idle_timeout:
            self._close()

    # --- requests ---------------------------------------------------------------------------
    def _head(self, head: RequestHead) -> None:
        ctx = self.ctx
        record = None
        if ctx.inspect:
            record = CaptureRecord(
                id=ctx.ids.new(),
                tunnel_name=ctx.spec.name,
                remote_addr=self.client_ip,
                start=time.time(),
                method=head.method.decode("ascii", "replace"),
                uri=head.target.decode("latin-1"),
                limit=ctx.capture_limit,
            )
        exchange = Exchange(head, record)
        if self.current is None:
            self.current = exchange
            self._begin(exchange)
        else:
            self.waiting.append(exchange)
            self._pause(_PAUSE_WAITING)

    def _target(self) -> Exchange | None:
        return self.waiting[-1] if self.waiting else self.current

    def _body(self, data: bytes) -> None:
        exchange = self._target()
        if exchange is None or exchange.answered_locally:
            return
        payload = chunk(data) if exchange.head.chunked else data
        if exchange.record is not None and exchange.recorded:
            exchange.record.add_request(payload)  # else `_begin` records it after the head
        self._send(exchange, payload)

    def _send(self, exchange: Exchange, payload: bytes) -> None:
        if exchange.upstream is not None and exchange.head_sent:
            exchange.body_sent = True
            if not exchange.response_started:
                exchange.keep_sent(payload)
            exchange.upstream.write(payload)
        else:
            exchange.buffered.append(payload)
            self._pause(_PAUSE_WAITING)

    def _end(self) -> None:
        exchange = self._target()
        if exchange is None:
            return
        exchange.request_done = True
        if exchange.answered_locally:
            if exchange is self.current:
                self._finish(exchange, keep_alive=exchange.head.keep_alive)
            return
        if exchange.head.chunked:
            if exchange.record is not None and exchange.recorded:
                exchange.record.add_request(LAST_CHUNK)
            self._send(exchange, LAST_CHUNK)
        if exchange.head_sent:
            self._arm_timeout(exchange)

    def _upgrade(self, rest: bytes) -> None:
        exchange = self._target()
        if exchange is None:
            return
        exchange.held = []
        self.holding = exchange
        if rest:
            self._hold(exchange, rest)

    def _hold(self, exchange: Exchange, data: bytes) -> None:
        assert exchange.held is not None
        exchange.held.append(data)
        self._pause(_PAUSE_WAITING)  # bounded: one read at most until the upstream answers

    def _begin(self, exchange: Exchange) -> None:
        ctx = self.ctx
        spec = ctx.spec
        if self.forbidden:
            self._answer_locally(exchange, 403, "Forbidden: your IP address is not allowed.")
            return
        if spec.basic_auth and not _authorized(spec, exchange.head):
            self._answer_locally(exchange, 401, "Authentication required.")
            return
        head = forwarded_head(
            exchange.head,
            client_ip=self.client_ip,
            scheme=ctx.public_scheme,
            host_header=ctx.host_header,
            remove=spec.request_header_remove,
            add=spec.request_header_add,
        )
        exchange.forwarded = head
        if exchange.record is not None:
            # The head first, then the body bytes that arrived while this request waited its turn
            # behind pipelined ones (they are buffered, not yet sent).
            exchange.record.add_request(head)
            for payload in exchange.buffered:
                exchange.record.add_request(payload)
            exchange.recorded = True
            ctx.sink.record(exchange.record)  # type: ignore[union-attr]
        upstream = ctx.pool.take()
        if upstream is not None:
            self._attach(exchange, upstream, head)
        else:
            self._pause(_PAUSE_WAITING)
            ctx.loop.create_task(self._connect(exchange, head))

    async def _connect(self, exchange: Exchange, head: bytes) -> None:
        try:
            upstream = await self.ctx.pool.connect(self.ctx.upstream_timeout)
        except TimeoutError:
            self._upstream_failed(exchange, 504, "timed out connecting to the local service")
            return
        except OSError as error:
            self._upstream_failed(exchange, 502, _dial_error(self.ctx.spec, error))
            return
        if self.closed or exchange is not self.current:
            self.ctx.pool.give_back(upstream)
            return
        self._attach(exchange, upstream, head)

    def _attach(self, exchange: Exchange, upstream: UpstreamConnection, head: bytes) -> None:
        exchange.upstream = upstream
        upstream.begin(self, exchange)
        if exchange.retried and exchange.sent:
            upstream.write(b"".join(exchange.sent))  # the first try's bytes, head included
        else:
            exchange.keep_sent(head)
            upstream.write(head)
        exchange.head_sent = True
        if exchange.buffered:
            exchange.body_sent = True
            for payload in exchange.buffered:
                exchange.keep_sent(payload)
                upstream.write(payload)
            exchange.buffered = []
        if self.write_blocked and self.paused_upstream is None:
            self.paused_upstream = upstream
            upstream.pause_reading()
        if exchange.request_done:
            self._arm_timeout(exchange)
        if self.holding is None:
            self._resume(_PAUSE_WAITING)

    def _arm_timeout(self, exchange: Exchange) -> None:
        # From the end of the request: an upload may take as long as it takes.
        if exchange.timeout is None and not exchange.response_started:
            exchange.timeout = self.ctx.loop.call_later(self.ctx.upstream_timeout, self._response_timed_out, exchange)

    def _response_timed_out(self, exchange: Exchange) -> None:
        if exchange is self.current and not exchange.response_started:
            self._upstream_failed(exchange, 504, "the local service did not answer in time")

    # --- responses (called by UpstreamConnection) ------------------------------------------
    def response_data(self, exchange: Exchange, data: bytes) -> None:
        if not exchange.response_started:
            if exchange.timeout is not None:
                exchange.timeout.cancel()
            exchange.answered_early = not exchange.request_done
            exchange.response_started = True
            exchange.sent = None  # answered: no retry any more
        if exchange.record is not None:
            exchange.record.add_response(data)
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def response_head(self, exchange: Exchange, status: int) -> None:
        self.ctx.metrics.request_done(time.perf_counter_ns() - exchange.started_ns)
        if exchange.record is not None:
            exchange.record.status_code = status

    def pipe_data(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def response_done(self, exchange: Exchange, *, keep_alive: bool) -> None:
        upstream = exchange.upstream
        exchange.upstream = None
        exchange.response_finished = True
        if upstream is not None:
            self._detach(upstream)
            # Reuse only a connection whose request went out whole before it answered (else the
            # service may never read the rest of that body) and that holds nothing unsent; and
            # only after an HTTP/1.1 request: a service closes after answering HTTP/1.0 even when
            # its answer does not say so.
            if (
                keep_alive
                and exchange.request_done
                and not exchange.answered_early
                and exchange.head.version == "1.1"
                and upstream.idle()
            ):
                self.ctx.pool.give_back(upstream)
            else:
                upstream.close()
        # A response before the whole request leaves unread body bytes; an Upgrade the upstream
        # declined leaves bytes of another protocol: close in both cases.
        keep_alive = keep_alive and exchange.head.keep_alive and exchange.request_done and exchange.held is None
        self._finish(exchange, keep_alive=keep_alive)

    def switch_to_pipe(self, exchange: Exchange) -> None:
        """The upstream accepted the Upgrade: from now on bytes flow untouched both ways."""
        if exchange.timeout is not None:
            exchange.timeout.cancel()
        self._complete_record(exchange)
        self.piping = True
        self.holding = None
        held, exchange.held = exchange.held or [], None
        for data in held:
            self._send(exchange, data)
        self._resume(_PAUSE_WAITING)

    def upstream_lost(
        self, upstream: UpstreamConnection, exchange: Exchange, error: Exception | None, *, unread: bool = False
    ) -> None:
        """The upstream connection ended before the response did.

        `unread`: the service's socket was closed when the request arrived (it answered with a
        reset), so the service never read any of it.
        """
        if self._may_retry(upstream, exchange, unread=unread or _is_reset(error)):
            # A pooled connection the local service closed as we reused it (keep-alive race):
            # nothing was answered; send the request again on a fresh connection.
            log.debug("tunnel %s: retrying %s on a fresh connection", self.ctx.spec.name, exchange.head.target)
            exchange.retried = True
            self._detach(upstream)
            exchange.upstream = None
            exchange.head_sent = False
            if exchange.timeout is not None:
                exchange.timeout.cancel()
                exchange.timeout = None
            self._pause(_PAUSE_WAITING)
            self.ctx.loop.create_task(self._connect(exchange, exchange.forwarded))
            return
        if exchange.response_started:
            # Piping, or forwarding a response whose end we did not see: only closing says so.
            if not self.piping and exchange.record is not None:
                exchange.record.mark_incomplete(
                    response=True, reason="the local service closed the connection before the response was complete"
                )
            self._complete_record(exchange)
            self._close()
            return
        detail = "the local service closed the connection without answering"
        if error is not None:
            detail = f"the local service reset the connection: {error}"
        self._upstream_failed(exchange, 502, detail)

    def _may_retry(self, upstream: UpstreamConnection, exchange: Exchange, *, unread: bool) -> bool:
        """Only a reused connection, only once, only before any answer, and only with every byte
        sent so far kept. Any method when the service never read the request (`unread`); else only
        a replayable one (Go's Transport rule: RFC 9110 9.2.2 idempotent methods or an
        Idempotency-Key), sent whole."""
        if not (
            upstream.reused
            and not exchange.retried
            and not exchange.response_started
            and exchange.sent is not None
            and exchange.held is None
            and exchange is self.current
            and not self.closed
        ):
            return False
        if unread:
            return True
        head = exchange.head
        replayable = head.method in _REPLAYABLE or head.header(b"idempotency-key") is not None
        return replayable and exchange.request_done

    def upstream_malformed(self, exchange: Exchange, detail: str) -> None:
        upstream = exchange.upstream
        if upstream is not None:
            self._detach(upstream)
            upstream.close()
            exchange.upstream = None
        if exchange.response_started:
            if exchange.record is not None:
                exchange.record.mark_incomplete(response=True, reason=f"the response broke off: {detail}")
            self._complete_record(exchange)
            self._close()
        else:
            self._upstream_failed(exchange, 502, detail)

    def _detach(self, upstream: UpstreamConnection) -> None:
        """Unhook an upstream from this client, undoing any pause either side put on the other."""
        upstream.end()
        if self.paused_upstream is upstream:
            self._release_upstream_pause()
        self._resume(_PAUSE_UPSTREAM_FULL)

    # --- endings ----------------------------------------------------------------------------
    def _upstream_failed(self, exchange: Exchange, status: int, detail: str) -> None:
        upstream = exchange.upstream
        if upstream is not None:
            self._detach(upstream)
            upstream.close()
            exchange.upstream = None
        if exchange is not self.current or self.closed:
            self._abandon(exchange)
            return
        log.info(
            "tunnel %s: %s %s -> %d (%s)",
            self.ctx.spec.name,
            exchange.head.method,
            exchange.head.target,
            status,
            detail,
        )
        page = error_response(status, detail)
        self.ctx.metrics.request_done(time.perf_counter_ns() - exchange.started_ns)
        if exchange.record is not None:
            exchange.record.restart_response()
            exchange.record.add_response(page)
            exchange.record.status_code = status
        exchange.response_started = True
        exchange.answered_locally = True
        if self.transport is not None:
            self.transport.write(page)
        self._finish(exchange, keep_alive=False)

    def _answer_locally(self, exchange: Exchange, status: int, detail: str) -> None:
        """Answer without the upstream (401, 403); the caller finishes the exchange."""
        exchange.answered_locally = True
        exchange.record = None
        page = error_response(status, detail, keep_alive=exchange.head.keep_alive)
        if status == 401:
            page = page.replace(b"\r\n\r\n", b'\r\nWWW-Authenticate: Basic realm="ngrok"\r\n\r\n', 1)
        if self.transport is not None:
            self.transport.write(page)

    def _finish(self, exchange: Exchange, *, keep_alive: bool) -> None:
        if exchange.timeout is not None:
            exchange.timeout.cancel()
        self._complete_record(exchange)
        if exchange is not self.current:
            return
        self.current = None
        self.holding = None
        if not keep_alive or self.piping or (self.client_eof and not self.waiting):
            self._close()
            return
        self._advance()

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
                        self._resume(_PAUSE_WAITING)
                    return
                exchange = self.current = self.waiting.popleft()
                if self.client_eof and not exchange.request_done:
                    self._close()  # the client left in the middle of this one
                    return
                if exchange.held is not None:
                    self.holding = exchange
                self._begin(exchange)
                if exchange.answered_locally and exchange.request_done:
                    self.current = None
                    if not exchange.head.keep_alive:
                        self._close()
                        return
        finally:
            self.advancing = False

    def _complete_record(self, exchange: Exchange) -> None:
        record = exchange.record
        if record is None or record.complete or not exchange.recorded:
            return
        if not exchange.request_done and not self.piping:
            if exchange.answered_early:
                reason = "the local service answered before the whole request body was sent"
            elif exchange.answered_locally:
                reason = "the agent stopped reading the request after the local service failed"
            else:
                reason = "the client closed the connection before the whole request was sent"
            record.mark_incomplete(request=True, reason=reason)
        record.duration_ns = time.perf_counter_ns() - exchange.started_ns
        record.complete = True
        self.ctx.sink.record(record)  # type: ignore[union-attr]

    def _abandon(self, exchange: Exchange) -> None:
        """The public side went away: drop the upstream connection, keep what was captured."""
        if exchange.timeout is not None:
            exchange.timeout.cancel()
        upstream = exchange.upstream
        if upstream is not None:
            self._detach(upstream)
            upstream.close()
            exchange.upstream = None
        record = exchange.record
        if record is not None and record.status_code is None:
            # The client left before the answer (nginx's 499): a final state, not "pending".
            record.status_code = CLIENT_CLOSED_REQUEST
            record.restart_response()
            record.response_raw = bytearray()
            record.mark_incomplete(response=True, reason="the client closed the connection before the response")
        elif record is not None and not exchange.response_finished and not exchange.answered_locally:
            if not self.piping:
                record.mark_incomplete(
                    response=True, reason="the client closed the connection before the whole response was sent"
                )
        self._complete_record(exchange)

    def _refuse(self, error: ProtocolError) -> None:
        exchange = self.current
        if exchange is not None and exchange.response_started:
            self._close()
            return
        if exchange is not None:
            self._abandon(exchange)
            self.current = None
        if self.transport is not None and not self.closed:
            self.transport.write(error_response(error.status, error.detail))
        self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def upstream_full(self, full: bool) -> None:
        if full:
            self._pause(_PAUSE_UPSTREAM_FULL)
        else:
            self._resume(_PAUSE_UPSTREAM_FULL)


class UpstreamConnection(asyncio.Protocol):
    """A connection to the tunnel's local service; serves one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.client: ClientConnection | None = None
        self.exchange: Exchange | None = None
        self.piping = False
        self.closed = False
        self.reused = False
        self.reading = True
        self.socket: socket.socket | None = None
        # Response head bytes held until the head is complete: a head over the limit, or one
        # that does not parse, becomes the agent's 502 instead of half a message for the client.
        self.head_bytes: list[bytes] = []
        self.head_size = 0
        self.head_seen = False
        self.head_chunk = b""  # the read that completed the response head (it starts with it)
        self.eof_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.socket = transport.get_extra_info("socket")

    def begin(self, client: ClientConnection, exchange: Exchange) -> None:
        self.client = client
        self.exchange = exchange
        self.parser.expect_head = exchange.head.method == b"HEAD"
        self.head_seen = False

    def readable(self) -> bool:
        """Whether the kernel holds bytes or an end of stream the loop has not delivered yet."""
        sock = self.socket
        if sock is None:
            return False
        try:
            return bool(select.select([sock.fileno()], [], [], 0)[0])
        except (OSError, ValueError):
            return True  # closed under us

    def end(self) -> None:
        self.client = None
        self.exchange = None

    def idle(self) -> bool:
        """Fit for the pool: open, reading, nothing left to write."""
        transport = self.transport
        return (
            transport is not None
            and not self.closed
            and self.reading
            and not self.piping
            and transport.get_write_buffer_size() == 0
        )

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.eof_timer is not None:
            self.eof_timer.cancel()
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and self.reading:
            self.reading = False
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.reading:
            self.reading = True
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        client, exchange = self.client, self.exchange
        if client is None or exchange is None:
            self.close()  # bytes nobody asked for: this connection cannot be trusted any more
            return
        if self.piping:
            client.pipe_data(data)
            return
        try:
            progress = self.parser.feed(data)
        except ProtocolError as error:
            client.upstream_malformed(exchange, error.detail)
            return
        if not self.head_seen:
            if not (progress.head_done or progress.interim_seen or progress.done):
                self.head_size += len(data)
                if self.head_size > self.pool.response_head_limit:
                    client.upstream_malformed(
                        exchange, f"the response head is larger than {self.pool.response_head_limit} bytes"
                    )
                    return
                self.head_bytes.append(data)
                self._acknowledge()
                return
            if self.head_bytes:
                data = b"".join((*self.head_bytes, data))
                self.head_bytes = []
            self.head_size = 0
            self.head_seen = progress.head_done or progress.done
            self.head_chunk = data
        if progress.head_done:
            client.response_head(exchange, progress.status)
        if progress.trailing and (exchange.head.method == b"HEAD" or progress.status in (204, 304)):
            # A body after a response that has none (RFC 9112 6.3): never the client's to read.
            data = data[: _head_end(data)]
        client.response_data(exchange, data)
        if not progress.done:
            self._acknowledge()
        if progress.upgraded:
            if exchange.held is not None:
                self.piping = True
                client.switch_to_pipe(exchange)
            else:  # a 101 nobody asked for
                client.upstream_malformed(exchange, "the local service switched protocols unasked")
        elif progress.done:
            client.response_done(exchange, keep_alive=progress.keep_alive)

    def _acknowledge(self) -> None:
        """Acknowledge the bytes just read at once.

        A service that writes its response head and body in two writes (Python's http.server,
        Django's runserver) holds the second behind Nagle's algorithm until the first is
        acknowledged, and on a reused connection Linux delays that acknowledgement by up to 40 ms
        (delayed ACK in "pingpong" mode). TCP_QUICKACK sends the pending ACK now.
        """
        sock = self.socket
        if _QUICKACK is not None and sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass

    def eof_received(self) -> bool | None:
        exchange = self.exchange
        if self.reused and exchange is not None and not exchange.response_started and not self.piping:
            # The service ended a reused connection without a byte of answer. If its socket was
            # closed before our request arrived, a reset follows; wait a moment to tell.
            self.eof_timer = asyncio.get_running_loop().call_later(RESET_GRACE_SECONDS, self._settle_eof)
            return True
        return None

    def _settle_eof(self) -> None:
        self.eof_timer = None
        unread = False
        if self.socket is not None:
            try:
                unread = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (errno.ECONNRESET, errno.EPIPE)
            except OSError:
                pass
        client, exchange = self.client, self.exchange
        self.end()
        self.close()
        if client is not None and exchange is not None:
            client.upstream_lost(self, exchange, None, unread=unread)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.eof_timer is not None:
            self.eof_timer.cancel()
            self.eof_timer = None
        self.pool.discard(self)
        client, exchange = self.client, self.exchange
        if client is None or exchange is None:
            return
        if not self.piping and exchange.response_started and self.parser.eof() and is_close_delimited(self.head_chunk):
            # A response framed by the connection's end: this close is its end.
            client.response_done(exchange, keep_alive=False)
            return
        client.upstream_lost(self, exchange, exc)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.upstream_full(True)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.upstream_full(False)


def _head_end(data: bytes) -> int:
    """Where the final head in `data` ends (after any interim 1xx heads); 0 if none is in it."""
    start = 0
    while data.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1"), start):
        start = data.find(b"\r\n\r\n", start) + 4
        if start < 4:
            return 0
    end = data.find(b"\r\n\r\n", start)
    return end + 4 if end >= 0 else 0


def _is_reset(error: Exception | None) -> bool:
    return isinstance(error, (ConnectionResetError, BrokenPipeError))


def _ip_allowed(spec: TunnelSpec, ip: str) -> bool:
    if not spec.allow_cidrs and not spec.deny_cidrs:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if any(address in net for net in spec.deny_cidrs):
        return False
    return not spec.allow_cidrs or any(address in net for net in spec.allow_cidrs)


def _authorized(spec: TunnelSpec, head: RequestHead) -> bool:
    value = head.header(b"authorization")
    if not value or value[:6].lower() != b"basic ":
        return False
    try:
        user, _, password = base64.b64decode(value[6:].strip(), validate=True).partition(b":")
    except binascii.Error:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str. No early exit: constant time.
    return any(
        hmac.compare_digest(user, u.encode()) & hmac.compare_digest(password, p.encode()) for u, p in spec.basic_auth
    )


def _dial_error(spec: TunnelSpec, error: OSError) -> str:
    where = spec.upstream.netloc
    if isinstance(error, ConnectionRefusedError):
        return f"failed to connect to the local service at {where}: connection refused"
    return f"failed to connect to the local service at {where}: {error.strerror or error}"
