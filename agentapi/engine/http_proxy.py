"""The socket side of an HTTP tunnel: one asyncio Protocol per public connection, a small pool of
keep-alive connections to the local service, and the tee into captures.

Rules:
- Bodies stream both ways; a full write buffer on one side pauses reading on the other
  (pause_writing/resume_writing), so memory stays bounded whatever the body size.
- A request head is rebuilt (hop-by-hop fields dropped, X-Forwarded-* added); its body is
  forwarded as llhttp hands it over (re-chunked if it came chunked). The response is forwarded as the
  upstream's bytes, untouched; llhttp only tells where it ends.
- One exchange at a time per public connection; pipelined requests wait their turn (reading is
  paused while one waits).
- The upstream failing before it answered (refused, reset, malformed, silent past the timeout) gives
  the client a 502/504 page, recorded as that exchange's response; after it answered, the client
  connection is closed as the only honest signal.
- After an Upgrade answered with 101 both sides become a raw byte pipe.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field

from .capture_id import CaptureIdFactory
from .capture_record import CaptureRecord
from .capture_sink import CaptureSink
from .http1 import (
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
)
from .metrics import TunnelMetrics
from .tunnel_spec import TunnelSpec

log = logging.getLogger(__name__)

MAX_IDLE_UPSTREAMS = 64
IDLE_UPSTREAM_SECONDS = 20.0

# Reasons the public connection's reading is paused; reading resumes when none is left.
_PAUSE_UPSTREAM_FULL = 1
_PAUSE_WAITING = 2


@dataclass(slots=True)
class TunnelContext:
    """What every connection of one HTTP tunnel shares."""

    spec: TunnelSpec
    metrics: TunnelMetrics
    sink: CaptureSink | None
    ids: CaptureIdFactory
    capture_limit: int
    upstream_timeout: float
    public_scheme: str = "http"
    pool: UpstreamPool = field(init=False)
    connections: set[ClientConnection] = field(default_factory=set)
    # Per-request constants, worked out once.
    host_header: bytes | None = field(init=False)
    loop: asyncio.AbstractEventLoop = field(init=False)

    def __post_init__(self) -> None:
        self.public_scheme = "https" if self.spec.public_tls else "http"
        self.pool = UpstreamPool(self.spec)
        self.host_header = _host_header(self.spec)
        self.loop = asyncio.get_running_loop()

    @property
    def inspect(self) -> bool:
        return self.sink is not None and self.spec.inspect


class UpstreamPool:
    """Idle keep-alive connections to the local service, newest reused first."""

    def __init__(self, spec: TunnelSpec) -> None:
        self._spec = spec
        self._idle: list[tuple[float, UpstreamConnection]] = []
        self._ssl: ssl.SSLContext | None = None
        if spec.upstream.scheme == "https":
            # The local service is usually self-signed; ngrok does not verify it either.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._ssl = context

    def take(self) -> UpstreamConnection | None:
        while self._idle:
            _, upstream = self._idle.pop()
            if not upstream.closed:
                upstream.reused = True
                return upstream
        return None

    def give_back(self, upstream: UpstreamConnection) -> None:
        if len(self._idle) >= MAX_IDLE_UPSTREAMS or upstream.closed:
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
        for _, upstream in self._idle:
            upstream.close()
        self._idle = []

    async def connect(self, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        upstream = self._spec.upstream
        _, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: UpstreamConnection(self),
                upstream.host,
                upstream.port,
                ssl=self._ssl,
                server_hostname=upstream.host if self._ssl else None,
            ),
            timeout,
        )
        return protocol


class Exchange:
    """One request/response on a public connection."""

    __slots__ = (
        "answered_locally",
        "body_sent",
        "buffered",
        "forwarded",
        "head",
        "head_sent",
        "record",
        "request_done",
        "response_started",
        "retried",
        "started_ns",
        "timeout",
        "upstream",
    )

    def __init__(self, head: RequestHead, record: CaptureRecord | None) -> None:
        self.head = head
        self.record = record
        self.started_ns = time.perf_counter_ns()
        self.head_sent = False
        self.request_done = False
        self.buffered: list[bytes] = []
        self.upstream: UpstreamConnection | None = None
        self.response_started = False
        self.answered_locally = False
        self.timeout: asyncio.TimerHandle | None = None
        self.forwarded = b""
        self.body_sent = False
        self.retried = False


class ClientConnection(asyncio.Protocol):
    """A connection accepted on the tunnel's public listener."""

    def __init__(self, context: TunnelContext) -> None:
        self.ctx = context
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.parser = RequestParser()
        self.current: Exchange | None = None
        self.waiting: deque[Exchange] = deque()
        self.paused = 0
        self.upgraded = False
        self.closed = False
        self.forbidden = False
        self.client_eof = False
        self.opened_ns = 0

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.opened_ns = time.perf_counter_ns()
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.forbidden = not _ip_allowed(self.ctx.spec, self.client_ip)
        self.ctx.connections.add(self)
        self.ctx.metrics.conn_opened()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.connections.discard(self)
        self.ctx.metrics.conn_closed(time.perf_counter_ns() - self.opened_ns)
        for exchange in (self.current, *self.waiting):
            if exchange is not None:
                self._abandon(exchange)
        self.current = None
        self.waiting.clear()

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            exchange = self.current
            if exchange is not None:
                self._send(exchange, data)
            return
        try:
            events = self.parser.feed(data)
        except ProtocolError as error:
            self._refuse(error.status, error.detail)
            return
        for event in events:
            if isinstance(event, Body):
                self._body(event.data)
            elif isinstance(event, RequestHead):
                self._head(event)
            elif isinstance(event, RequestEnd):
                self._end()
            elif isinstance(event, Upgrade):
                self._upgrade(event.rest)

    def eof_received(self) -> bool | None:
        # A half-closed client may still want its response; close once it is written.
        self.client_eof = True
        if self.current is None:
            return None
        return True

    def pause_writing(self) -> None:
        exchange = self.current
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.pause_reading()

    def resume_writing(self) -> None:
        exchange = self.current
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.resume_reading()

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
        if exchange.record is not None:
            exchange.record.add_request(payload)
        self._send(exchange, payload)

    def _send(self, exchange: Exchange, payload: bytes) -> None:
        if exchange.upstream is not None and exchange.head_sent:
            exchange.body_sent = True
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
            if exchange.record is not None:
                exchange.record.add_request(LAST_CHUNK)
            self._send(exchange, LAST_CHUNK)

    def _upgrade(self, rest: bytes) -> None:
        # The request asked to switch protocols; bytes after its head belong to the new protocol
        # and wait until the upstream agrees (101).
        exchange = self._target()
        self.upgraded = True
        if exchange is not None and rest:
            self._send(exchange, rest)

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
            exchange.record.add_request(head)
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
        upstream.write(head)
        exchange.head_sent = True
        if exchange.buffered:
            exchange.body_sent = True
            for payload in exchange.buffered:
                upstream.write(payload)
            exchange.buffered = []
        exchange.timeout = self.ctx.loop.call_later(self.ctx.upstream_timeout, self._response_timed_out, exchange)
        self._resume(_PAUSE_WAITING)

    def _response_timed_out(self, exchange: Exchange) -> None:
        if exchange is self.current and not exchange.response_started:
            self._upstream_failed(exchange, 504, "the local service did not answer in time")

    # --- responses (called by UpstreamConnection) ------------------------------------------
    def response_data(self, exchange: Exchange, data: bytes) -> None:
        if exchange.timeout is not None and not exchange.response_started:
            exchange.timeout.cancel()
        exchange.response_started = True
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

    def response_done(self, exchange: Exchange, *, keep_alive: bool, upstream_reusable: bool) -> None:
        upstream = exchange.upstream
        if upstream is not None:
            upstream.end()
            if upstream_reusable and exchange.request_done:
                self.ctx.pool.give_back(upstream)
            else:
                upstream.close()
        # A response that came before the whole request leaves unread body bytes: close then.
        keep_alive = keep_alive and exchange.head.keep_alive and exchange.request_done
        self._finish(exchange, keep_alive=keep_alive)

    def switch_to_pipe(self, exchange: Exchange) -> None:
        """The upstream accepted the Upgrade: from now on bytes flow untouched both ways."""
        self._complete_record(exchange)
        self.upgraded = True
        if exchange.timeout is not None:
            exchange.timeout.cancel()

    def upstream_lost(self, upstream: UpstreamConnection, exchange: Exchange, error: Exception | None) -> None:
        if self._may_retry(upstream, exchange):
            # A pooled connection the local service closed as we reused it (keep-alive race):
            # nothing was answered and nothing but the head was sent, so sending again is safe.
            exchange.retried = True
            exchange.upstream = None
            exchange.head_sent = False
            if exchange.timeout is not None:
                exchange.timeout.cancel()
            self._pause(_PAUSE_WAITING)
            self.ctx.loop.create_task(self._connect(exchange, exchange.forwarded))
            return
        if self.upgraded or not exchange.response_started:
            if self.upgraded and exchange.response_started:
                self._close()
                return
            detail = "the local service closed the connection without answering"
            if error is not None:
                detail = f"the local service reset the connection: {error}"
            self._upstream_failed(exchange, 502, detail)
        else:
            # Already forwarding a response whose end we did not see: only closing says so.
            self._complete_record(exchange)
            self._close()

    def _may_retry(self, upstream: UpstreamConnection, exchange: Exchange) -> bool:
        return (
            upstream.reused
            and not exchange.retried
            and not exchange.response_started
            and not exchange.body_sent
            and exchange.request_done
            and not self.upgraded
            and exchange is self.current
            and not self.closed
        )

    def upstream_malformed(self, exchange: Exchange, detail: str) -> None:
        upstream = exchange.upstream
        if upstream is not None:
            upstream.end()
            upstream.close()
        if exchange.response_started:
            self._complete_record(exchange)
            self._close()
        else:
            self._upstream_failed(exchange, 502, detail)

    # --- endings ----------------------------------------------------------------------------
    def _upstream_failed(self, exchange: Exchange, status: int, detail: str) -> None:
        upstream = exchange.upstream
        if upstream is not None:
            upstream.end()
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
        self.upgraded = False
        exchange.answered_locally = True
        if self.transport is not None:
            self.transport.write(page)
        self._finish(exchange, keep_alive=False)

    def _answer_locally(self, exchange: Exchange, status: int, detail: str) -> None:
        exchange.answered_locally = True
        exchange.record = None
        page = error_response(status, detail, keep_alive=exchange.head.keep_alive)
        if status == 401:
            page = page.replace(b"\r\n\r\n", b'\r\nWWW-Authenticate: Basic realm="ngrok"\r\n\r\n', 1)
        if self.transport is not None:
            self.transport.write(page)
        if exchange.request_done:
            self._finish(exchange, keep_alive=exchange.head.keep_alive)

    def _finish(self, exchange: Exchange, *, keep_alive: bool) -> None:
        if exchange.timeout is not None:
            exchange.timeout.cancel()
        self._complete_record(exchange)
        if exchange is not self.current:
            return
        self.current = None
        if not keep_alive or self.upgraded:
            self._close()
            return
        if self.waiting:
            self.current = self.waiting.popleft()
            if not self.waiting:
                self._resume(_PAUSE_WAITING)
            self._begin(self.current)
            if self.current is not None and self.current.request_done and self.current.answered_locally:
                self._finish(self.current, keep_alive=self.current.head.keep_alive)
        elif self.client_eof:
            self._close()

    def _complete_record(self, exchange: Exchange) -> None:
        record = exchange.record
        if record is None or record.complete:
            return
        record.duration_ns = time.perf_counter_ns() - exchange.started_ns
        record.complete = True
        self.ctx.sink.record(record)  # type: ignore[union-attr]

    def _abandon(self, exchange: Exchange) -> None:
        """The public side went away: drop the upstream connection, keep what was captured."""
        if exchange.timeout is not None:
            exchange.timeout.cancel()
        upstream = exchange.upstream
        if upstream is not None:
            upstream.end()
            upstream.close()
            exchange.upstream = None
        self._complete_record(exchange)

    def _refuse(self, status: int, detail: str) -> None:
        exchange = self.current
        if exchange is not None and exchange.response_started:
            self._close()
            return
        if exchange is not None:
            self._abandon(exchange)
            self.current = None
        if self.transport is not None:
            self.transport.write(error_response(status, detail))
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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def begin(self, client: ClientConnection, exchange: Exchange) -> None:
        self.client = client
        self.exchange = exchange
        self.parser.expect_head = exchange.head.method == b"HEAD"

    def end(self) -> None:
        self.client = None
        self.exchange = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
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
        if progress.head_done:
            client.response_head(exchange, progress.status)
        client.response_data(exchange, data)
        if progress.upgraded:
            self.piping = True
            client.switch_to_pipe(exchange)
        elif progress.done:
            client.response_done(exchange, keep_alive=progress.keep_alive, upstream_reusable=progress.keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        client, exchange = self.client, self.exchange
        self.end()
        if client is None or exchange is None:
            return
        if not self.piping and exchange.response_started and self.parser.eof():
            # A response framed by the connection's end: this close is its end.
            client.response_done(exchange, keep_alive=False, upstream_reusable=False)
            return
        client.upstream_lost(self, exchange, exc)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.upstream_full(True)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.upstream_full(False)


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
        user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return any(
        hmac.compare_digest(user, u) & hmac.compare_digest(password, p)  # no early exit: constant time
        for u, p in spec.basic_auth
    )


def _host_header(spec: TunnelSpec) -> bytes | None:
    mode = spec.host_header
    if not mode or mode == "preserve":
        return None
    if mode == "rewrite":
        upstream = spec.upstream
        default = 443 if upstream.scheme == "https" else 80
        host = upstream.host if upstream.port == default else f"{upstream.host}:{upstream.port}"
        return host.encode("idna")
    return mode.encode("latin-1")


def _dial_error(spec: TunnelSpec, error: OSError) -> str:
    where = f"{spec.upstream.host}:{spec.upstream.port}"
    if isinstance(error, ConnectionRefusedError):
        return f"failed to connect to the local service at {where}: connection refused"
    return f"failed to connect to the local service at {where}: {error.strerror or error}"
