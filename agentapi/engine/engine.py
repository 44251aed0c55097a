"""The data plane: opens and closes tunnel listeners, ticks their metrics, replays requests.

The engine is the source of truth for what is running. It knows nothing of Django views or the
database: captures leave through the CaptureSink it is given.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from dataclasses import dataclass, field

from .capture_id import CaptureIdFactory
from .capture_record import CaptureRecord
from .capture_sink import CaptureSink
from .http1 import ProtocolError, RequestEnd, RequestParser, ResponseParser, error_response, parse_stored_head
from .http_proxy import ClientConnection, TunnelContext
from .metrics import TICK_SECONDS, TunnelMetrics
from .tcp_pipe import PublicSide
from .tunnel_spec import TunnelSpec, join_host_port
from .upstream import upstream_tls
from .upstream_dial import dial

log = logging.getLogger(__name__)


class TunnelStartError(Exception):
    """The listener could not be opened (port in use, permission)."""


class TunnelExists(Exception):
    pass


class ReplayRefused(ValueError):
    """The stored bytes are not a whole request: sending them would leave the service waiting for
    a body that never comes."""


def check_replayable(raw: bytes) -> None:
    """Raise ReplayRefused unless `raw` is exactly one complete HTTP/1 request (head and body)."""
    parser = RequestParser()
    events = parser.feed(raw)
    if parser.error is not None:
        raise ReplayRefused(f"the stored request is not valid HTTP: {parser.error.detail}")
    if not any(isinstance(event, RequestEnd) for event in events):
        raise ReplayRefused("the stored request is not complete: its body is shorter than its head announces")
    if sum(isinstance(event, RequestEnd) for event in events) > 1:
        raise ReplayRefused("the stored bytes hold more than one request")


@dataclass(eq=False)
class RunningTunnel:
    spec: TunnelSpec
    tunnel_id: str
    public_url: str
    metrics: TunnelMetrics
    server: asyncio.AbstractServer
    http: TunnelContext | None = None
    tcp_connections: set[PublicSide] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name


class Engine:
    def __init__(
        self,
        *,
        sink: CaptureSink | None,
        capture_limit: int,
        upstream_timeout: float,
        https_context: ssl.SSLContext | None = None,
        head_timeout: float = 30.0,
        idle_timeout: float = 90.0,
        response_head_limit: int = 64 * 1024,
    ) -> None:
        self.sink = sink
        self.response_head_limit = response_head_limit
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        # The agent's own certificate, for https public URLs.
        self.https_context = https_context
        self.capture_limit = capture_limit
        self.upstream_timeout = upstream_timeout
        self.ids = CaptureIdFactory()
        self._tunnels: dict[str, RunningTunnel] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._starting: set[str] = set()

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="metrics-ticker")

    def tunnel(self, name: str) -> RunningTunnel | None:
        return self._tunnels.get(name)

    def tunnels(self) -> list[RunningTunnel]:
        return list(self._tunnels.values())

    async def start_tunnel(self, spec: TunnelSpec) -> RunningTunnel:
        if spec.name in self._tunnels or spec.name in self._starting:
            raise TunnelExists(f'tunnel "{spec.name}" already exists')
        self._starting.add(spec.name)
        try:
            return await self._open(spec)
        finally:
            self._starting.discard(spec.name)

    async def _open(self, spec: TunnelSpec) -> RunningTunnel:
        loop = asyncio.get_running_loop()
        metrics = TunnelMetrics()
        context: TunnelContext | None = None
        tcp_connections: set[PublicSide] = set()
        if spec.proto in ("http", "https"):
            context = TunnelContext(
                spec=spec,
                metrics=metrics,
                sink=self.sink,
                ids=self.ids,
                capture_limit=self.capture_limit,
                # The tunnel's own `response_timeout` wins over the agent's AGENT_UPSTREAM_TIMEOUT.
                upstream_timeout=spec.response_timeout or self.upstream_timeout,
                head_timeout=self.head_timeout,
                idle_timeout=self.idle_timeout,
                response_head_limit=self.response_head_limit,
            )
            http_context = context

            def factory() -> asyncio.Protocol:
                return ClientConnection(http_context)
        else:

            def factory() -> asyncio.Protocol:
                return PublicSide(spec, metrics, tcp_connections)

        try:
            server = await loop.create_server(
                factory,
                spec.listen_host,
                spec.listen_port,
                reuse_address=True,
                backlog=1024,
                ssl=self._public_tls(spec),
            )
        except OSError as error:
            raise TunnelStartError(
                f"failed to listen on {join_host_port(spec.listen_host, spec.listen_port)}: {error.strerror or error}"
            ) from None
        port = server.sockets[0].getsockname()[1]
        host = spec.listen_host
        url_host = f"[{host}]" if ":" in host else host
        scheme = spec.proto
        tunnel = RunningTunnel(
            spec=spec,
            tunnel_id=uuid.uuid4().hex,
            public_url=f"{scheme}://{url_host}:{port}",
            metrics=metrics,
            server=server,
            http=context,
            tcp_connections=tcp_connections,
        )
        self._tunnels[spec.name] = tunnel
        return tunnel

    def _public_tls(self, spec: TunnelSpec) -> ssl.SSLContext | None:
        if not spec.public_tls:
            return None
        if spec.crt:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(spec.crt, spec.key)
            except (OSError, ssl.SSLError) as error:
                raise TunnelStartError(f"cannot load crt/key: {error}") from None
            return context
        if self.https_context is None:
            raise TunnelStartError("https needs a certificate and none is configured")
        return self.https_context

    async def stop_tunnel(self, name: str) -> RunningTunnel:
        tunnel = self._tunnels.pop(name)  # KeyError: not running
        tunnel.server.close()
        if tunnel.http is not None:
            for connection in list(tunnel.http.connections):
                connection.abort()
            tunnel.http.pool.close()
        for side in list(tunnel.tcp_connections):
            side.abort()
        await tunnel.server.wait_closed()
        return tunnel

    async def close(self) -> None:
        for name in list(self._tunnels):
            await self.stop_tunnel(name)
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _tick(self) -> None:
        # Timeouts are swept every second; metrics tick every TICK_SECONDS (go-metrics' 5 s).
        seconds = 0
        while True:
            await asyncio.sleep(1)
            seconds += 1
            for tunnel in list(self._tunnels.values()):
                if seconds % TICK_SECONDS == 0:
                    tunnel.metrics.tick()
                if tunnel.http is not None:
                    tunnel.http.sweep()

    async def replay(self, raw: bytes, tunnel_name: str, *, replay_of: str = "") -> CaptureRecord:
        """Send stored request bytes straight to the tunnel's local service and capture the result.

        Tunnel policies (basic auth, header rules) are not applied: the bytes already went through
        them once. Returns when the new capture is stored.

        Raises KeyError when the tunnel is not running here, ReplayRefused when `raw` is not one
        whole request.
        """
        tunnel = self._tunnels[tunnel_name]  # KeyError: not running
        check_replayable(raw)  # ReplayRefused: never send what would hang the service
        head = parse_stored_head(raw, response=False)
        record = CaptureRecord(
            id=self.ids.new(),
            tunnel_name=tunnel_name,
            remote_addr="127.0.0.1",
            start=time.time(),
            method=head.method,
            uri=head.target,
            limit=self.capture_limit,
            replay_of=replay_of,
        )
        record.add_request(raw)
        started = time.perf_counter_ns()
        try:
            timeout = tunnel.spec.response_timeout or self.upstream_timeout
            status = await asyncio.wait_for(self._exchange(tunnel.spec, raw, record), timeout)
        except TimeoutError:
            status = _fail(record, 504, "the local service did not answer in time")
        except OSError as error:
            status = _fail(record, 502, f"failed to reach the local service: {error.strerror or error}")
        except ProtocolError as error:
            status = _fail(record, 502, error.detail)
        record.status_code = status
        record.duration_ns = time.perf_counter_ns() - started
        tunnel.metrics.request_done(record.duration_ns)
        record.complete = True
        if self.sink is not None:
            await self.sink.stored(record)
        return record

    async def _exchange(self, spec: TunnelSpec, raw: bytes, record: CaptureRecord) -> int:
        upstream = spec.upstream
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        transport, protocol = await dial(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
            upstream.host,
            upstream.port,
            ssl_context=upstream_tls(spec),
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)  # type: ignore[arg-type]
        try:
            writer.write(raw)
            parser = ResponseParser()
            parser.expect_head = record.method == "HEAD"
            while True:
                data = await reader.read(65536)
                if not data:
                    if parser.eof():
                        return parser.status
                    raise ProtocolError(502, "the local service closed the connection without answering")
                record.add_response(data)
                progress = parser.feed(data)
                if progress.done:
                    return parser.status
        finally:
            writer.close()


def _fail(record: CaptureRecord, status: int, detail: str) -> int:
    record.restart_response()
    record.add_response(error_response(status, detail))
    return status
