"""The agent's side of the connections to a tunnel's local service: a pool of keep-alive
connections, and the protocol that reads one response at a time from each.

Rules:
- One exchange at a time per upstream connection (`begin` .. `end`); bytes that arrive when no
  exchange owns the connection close it: it cannot be trusted any more.
- The pool hands out the newest idle connection first and never one that is readable while idle
  (the service closed it, or sent bytes nobody asked for, and the loop has not seen it yet: a
  zero-timeout poll tells). Only an `idle()` connection is taken back: open, reading, not a
  pipe, nothing left to write. At most MAX_IDLE_UPSTREAMS wait; one idle for IDLE_UPSTREAM_SECONDS
  is closed by the sweep; after `close()` (the tunnel stopped) a connection given back is closed.
- The response head is held until it is complete, at most `response_head_limit` bytes: an
  oversized or malformed head becomes the agent's 502 (`upstream_malformed`), never half a
  message for the client. The read that completes it starts with the whole head, so
  `head_chunk` tells a close-delimited response apart (`is_close_delimited`). From then on the
  service's bytes are forwarded untouched as they arrive; llhttp only says where the response ends.
- A body after a response that has none (204, 304, or the answer to HEAD; RFC 9112 6.3) is cut
  from the read and never reaches the client (nor the capture); the connection is then not reused,
  and the public one is closed after the response.
- TCP_QUICKACK after each read that does not finish the response (Linux): a service that writes
  head and body in two writes is not held up 40 ms by a delayed acknowledgement.
- A reused connection that ends without a byte of answer waits RESET_GRACE_SECONDS for the reset
  that tells the service's socket was closed before the request arrived (it never read it): the
  exchange may then resend any method (`unread`). A close that ends a close-delimited response is
  that response's end; any other close before the end is `upstream_lost`.
- A 101 answering the exchange's Upgrade turns the connection into a raw pipe to the client; a
  101 nobody asked for is malformed.
- The final response head passes through response_head_rewrite.py before the client sees it: a
  service's `ngrok-error-code` field is dropped (only the agent sets it), and with
  `host_header: rewrite` a Location naming the upstream's host is pointed back at the public URL.
- With `proxy_protocol` (proxy_protocol.py), a connection's first bytes are the PROXY header of
  the client whose exchange it serves first. Such a connection is never pooled: reused for
  another client it would carry the first one's address (ngrok's agent, too, gives each public
  connection its own upstream connection). A pooled connection therefore never carries one.
- https upstreams: not verified (ngrok's default, "HTTPS forwarding" in
  snippets/gateway/shared/http-end-source.mdx), or with `upstream_tls_verify` the certificate
  chain and host name, against the system store or `upstream_tls_verify_cas`.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import ssl
import time

from .http1 import ProtocolError, ResponseParser, final_head_span, is_close_delimited, origin_form
from .http_exchange import AWAITING, STARTED, Exchange
from .proxy_protocol import proxy_header
from .response_head_rewrite import location_rewrite, rewrite_response_head
from .tunnel_spec import TunnelConfigError, TunnelSpec
from .upstream_dial import dial

MAX_IDLE_UPSTREAMS = 64
IDLE_UPSTREAM_SECONDS = 20.0
# After a reused connection ends with no answer, how long to wait for the reset that tells the
# service's socket was already closed when the request arrived (so it never read it).
RESET_GRACE_SECONDS = 0.2
# Linux: acknowledge now instead of up to 40 ms later (see UpstreamConnection._acknowledge).
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def upstream_tls(spec: TunnelSpec) -> ssl.SSLContext | None:
    """How to speak TLS to an https:// addr: unverified, as ngrok does by default (local services
    are usually self-signed); with `upstream_tls_verify`, the certificate chain and host name are
    checked against `upstream_tls_verify_cas` (a PEM file) or else the system store.

    Raises TunnelConfigError when the CA file cannot be loaded (gone since the definition was
    checked, say).
    """
    if spec.upstream.scheme != "https":
        return None
    if spec.upstream_tls_verify:
        try:
            return ssl.create_default_context(cafile=spec.upstream_tls_verify_cas or None)
        except (OSError, ssl.SSLError) as error:
            raise TunnelConfigError(
                f"upstream_tls_verify_cas {spec.upstream_tls_verify_cas!r} cannot be loaded: {error}"
            ) from None
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
        # What the service's response heads may need (see the banner); None / 0: nothing.
        self.location = location_rewrite(spec)
        self.proxy_protocol = spec.proxy_protocol

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
        if self.closed or self.proxy_protocol or len(self._idle) >= MAX_IDLE_UPSTREAMS or not upstream.idle():
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


class UpstreamConnection(asyncio.Protocol):
    """A connection to the tunnel's local service; serves one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.exchange: Exchange | None = None
        self.piping = False
        self.closed = False
        self.reused = False
        self.reading = True
        self.socket: socket.socket | None = None
        self.poller: select.poll | None = None  # made on the first readable()
        # Response head bytes held until the head is complete: a head over the limit, or one
        # that does not parse, becomes the agent's 502 instead of half a message for the client.
        self.head_bytes: list[bytes] = []
        self.head_size = 0
        self.head_seen = False
        self.head_chunk = b""  # the read that completed the response head (it starts with it)
        self.eof_timer: asyncio.TimerHandle | None = None
        self.fresh = True  # no exchange began yet (a PROXY header goes before the first)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        self.socket = transport.get_extra_info("socket")

    def begin(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.parser.expect_head = exchange.head.method == b"HEAD"
        self.head_seen = False
        if self.fresh:
            self.fresh = False
            if self.pool.proxy_protocol:
                self._send_proxy_header(exchange)

    def _send_proxy_header(self, exchange: Exchange) -> None:
        """The PROXY header of the exchange's client, before anything else on this connection."""
        client = exchange.client.transport
        peer = client.get_extra_info("peername") if client is not None else None
        local = client.get_extra_info("sockname") if client is not None else None
        self.write(proxy_header(self.pool.proxy_protocol, peer, local))

    def end(self) -> None:
        self.exchange = None

    def readable(self) -> bool:
        """Whether the kernel holds bytes, an end of stream or an error the loop has not delivered
        yet. Asked each time the pool hands the connection out: a poll object registered once
        costs less than half what select.select([fd], [], [], 0) does (~0.3 us against ~0.7)."""
        poller = self.poller
        if poller is None:
            sock = self.socket
            if sock is None:
                return False
            try:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN)
            except (OSError, ValueError):
                return True  # closed under us
            self.poller = poller
        try:
            return bool(poller.poll(0))  # POLLHUP, POLLERR and POLLNVAL count too
        except (OSError, ValueError):
            return True

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

    # --- asyncio.Protocol -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes nobody asked for: this connection cannot be trusted any more
            return
        if self.piping:
            exchange.pipe_data(data)
            return
        try:
            progress = self.parser.feed(data)
        except ProtocolError as error:
            exchange.upstream_malformed(error.detail)
            return
        if not self.head_seen:
            if not (progress.head_done or progress.interim_seen or progress.done):
                self.head_size += len(data)
                if self.head_size > self.pool.response_head_limit:
                    exchange.upstream_malformed(
                        f"the response head is larger than {self.pool.response_head_limit} bytes"
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
            location = self.pool.location
            data = rewrite_response_head(data, location, public_origin(exchange) if location is not None else b"")
            exchange.response_head(progress.status)
            if self.parser.expect_head and len(data) > final_head_span(data)[1]:
                # llhttp reads bytes after the answer to HEAD as its announced body (it cannot know
                # better), so it does not call them trailing: they are, all the same.
                progress.trailing = True
                progress.keep_alive = False
        if progress.trailing and (exchange.head.method == b"HEAD" or progress.status in (204, 304)):
            # A body after a response that has none (RFC 9112 6.3): never the client's to read.
            data = data[: final_head_span(data)[1]]
        exchange.response_data(data)
        if not progress.done:
            self._acknowledge()
        if progress.upgraded:
            if exchange.held is not None:
                self.piping = True
                exchange.switch_to_pipe()
            else:  # a 101 nobody asked for
                exchange.upstream_malformed("the local service switched protocols unasked")
        elif progress.done:
            exchange.response_done(keep_alive=progress.keep_alive)

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
        if self.reused and exchange is not None and exchange.response is AWAITING and not self.piping:
            # The service ended a reused connection without a byte of answer. If its socket was
            # closed before our request arrived, a reset follows; wait a moment to tell.
            self.eof_timer = asyncio.get_running_loop().call_later(RESET_GRACE_SECONDS, self.settle_eof)
            return True
        return None

    def settle_eof(self) -> None:
        """The grace after an answerless end is over: read the socket's error and report the loss."""
        self.eof_timer = None
        unread = False
        if self.socket is not None:
            try:
                unread = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (errno.ECONNRESET, errno.EPIPE)
            except OSError:
                pass
        exchange = self.exchange
        self.end()
        self.close()
        if exchange is not None:
            exchange.upstream_lost(self, None, unread=unread)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.eof_timer is not None:
            self.eof_timer.cancel()
            self.eof_timer = None
        self.pool.discard(self)
        exchange = self.exchange
        if exchange is None:
            return
        if (
            not self.piping
            and exchange.response >= STARTED
            and self.parser.eof()
            and is_close_delimited(self.head_chunk)
        ):
            # A response framed by the connection's end: this close is its end.
            exchange.response_done(keep_alive=False)
            return
        exchange.upstream_lost(self, exc)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.flow.upstream_full(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.flow.upstream_full(False)


def public_origin(exchange: Exchange) -> bytes:
    """`scheme://host[:port]` as the client reached the tunnel: the public scheme and the Host it
    sent (an absolute-form target's authority first; the endpoint's URL when it sent none)."""
    head = exchange.head
    authority = origin_form(head.target)[1] or head.header(b"host")
    ctx = exchange.client.ctx
    if not authority:
        return ctx.endpoint.url.encode("ascii", "replace")
    return b"%s://%s" % (ctx.public_scheme.encode("ascii"), authority)
