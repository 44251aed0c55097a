"""The data plane: opens and closes tunnel listeners, ticks their metrics, replays requests.

The engine is the source of truth for what is running. It knows nothing of Django views or the
database: captures leave through the CaptureSink it is given.

Traffic Policy: each action's `prepare` runs before the listener opens (a JWKS fetched, say; a
PolicyError refuses the tunnel as a bad definition), and the policy is closed when the tunnel
stops. An internal endpoint (`spec.internal`: a `.internal` URL or `bindings: [internal]`) has no
listener: it is registered by its URL and reached only through forward-internal (ngrok's
`universal-gateway/internal-endpoints`).

Pooling (ngrok's `universal-gateway/endpoint-pooling`): endpoints that all set `pooling_enabled`
and ask for the same listen address share one listener; each new connection goes to the next
member in turn (round robin), and the listener closes with its last member. An endpoint without
`pooling_enabled` on a taken address is refused, as ngrok refuses a second endpoint on one URL.

The built-in file server (an addr `file:///dir`, file_server.py): the tunnel's own server starts
on 127.0.0.1 before its listener opens, the running spec's upstream is its address, and it
closes when the tunnel stops (or when the tunnel fails to open).

More than one process (`--workers N`, agentapi/workers): each process runs an Engine with
`reuse_port`, every listener bound with SO_REUSEPORT on the same address, and the kernel spreads
new connections among them. The main process's engine (`port_owner`) first checks a fixed port
is free without SO_REUSEPORT; the workers' engines bind the port the main process got.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .capture_id import CaptureIdFactory
from .capture_record import CaptureRecord
from .capture_sink import CaptureSink
from .exchange_policy import ExchangePolicy
from .file_server import FileServer
from .http1 import (
    Body,
    ProtocolError,
    RequestEnd,
    RequestHead,
    RequestParser,
    ResponseParser,
    error_response,
    parse_stored_head,
)
from .http_policy import answer_bytes, policy_head, request_facts, request_head_bytes
from .http_proxy import ClientConnection, TunnelContext
from .metrics import TICK_SECONDS, TunnelMetrics
from .policy.actions.base import REQUEST
from .policy.errors import PolicyError
from .policy.facts import ConnFacts, EndpointFacts
from .policy.outcomes import CloseConnection, ForwardInternal, Respond
from .proxy_protocol import proxy_header
from .tcp_pipe import PublicSide
from .tunnel_spec import TunnelConfigError, TunnelSpec, Upstream, join_host_port
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
    server: asyncio.AbstractServer | None  # None for an internal endpoint
    http: TunnelContext | None = None
    tcp_connections: set[PublicSide] = field(default_factory=set)
    pool: ListenerPool | None = None  # pooling_enabled: the listener it shares
    factory: Callable[[], asyncio.Protocol] | None = None  # a connection for this tunnel
    tcp_spec: list[TunnelSpec] | None = None  # TCP/TLS: the spec new connections take
    endpoint: EndpointFacts | None = None  # as policies see it (set once its address is known)
    file_server: FileServer | None = None  # an addr file:///dir: the server it forwards to

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(eq=False)
class ListenerPool:
    """One listener shared by pooled endpoints; connections go to the members in turn."""

    server: asyncio.AbstractServer | None = None
    members: list[RunningTunnel] = field(default_factory=list)
    turn: int = 0

    def connection(self) -> asyncio.Protocol:
        member = self.members[self.turn % len(self.members)]
        self.turn += 1
        assert member.factory is not None
        return member.factory()


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
        reuse_port: bool = False,
        port_owner: bool = True,
    ) -> None:
        """`reuse_port`: bind every listener with SO_REUSEPORT, so the other engine processes of
        `--workers N` (agentapi/workers) can bind the same address and the kernel spreads the
        connections among them. Off with one process. `port_owner` (with reuse_port: the main
        process, not its workers): a port is first bound without SO_REUSEPORT to see it is free,
        so another agent of the same user that also runs workers is refused the port as a second
        agent is without them, instead of silently taking half its connections."""
        self.sink = sink
        self.reuse_port = reuse_port
        self.port_owner = port_owner
        self.response_head_limit = response_head_limit
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        # The agent's own certificate, for https public URLs.
        self.https_context = https_context
        self.capture_limit = capture_limit
        self.upstream_timeout = upstream_timeout
        self.ids = CaptureIdFactory()
        self._tunnels: dict[str, RunningTunnel] = {}
        self._internal: dict[tuple[str, int], RunningTunnel] = {}  # by (host, port) of the internal URL
        self._pools: dict[tuple[str, int], ListenerPool] = {}  # pooled listeners by (host, port)
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
        file_server: FileServer | None = None
        try:
            if spec.file_root:
                try:
                    file_server = await FileServer.start(spec.file_root)
                except OSError as error:
                    raise TunnelStartError(f"cannot serve {spec.file_root}: {error.strerror or error}") from None
                spec = replace(spec, upstream=Upstream("http", "127.0.0.1", file_server.port))
            tunnel = await self._open(spec)
            tunnel.file_server, file_server = file_server, None
            return tunnel
        finally:
            self._starting.discard(spec.name)
            if file_server is not None:  # the tunnel did not open
                await file_server.close()

    async def swap_policy(self, spec: TunnelSpec) -> RunningTunnel | None:
        """Put `spec` in place of the running tunnel of its name when only its Traffic Policy (or
        the definition's wording) differs: the listener and every open connection stay, the next
        request runs the new policy. None when the tunnel is not running or differs otherwise.
        Raises TunnelConfigError when an action of the new policy cannot prepare."""
        tunnel = self._tunnels.get(spec.name)
        if tunnel is not None and tunnel.file_server is not None:
            # A file:// tunnel runs with its own file server as the upstream: compare the rest.
            spec = replace(spec, upstream=tunnel.spec.upstream)
        if tunnel is None or tunnel.spec != spec:  # policy and definition are not compared
            return None
        if spec.policy is not None:
            try:
                for action in spec.policy.actions():
                    await action.prepare()
            except PolicyError as error:
                raise TunnelConfigError(str(error)) from None
        old = tunnel.spec.policy
        tunnel.spec = spec
        if tunnel.http is not None:
            tunnel.http.spec = spec
        if tunnel.tcp_spec is not None:
            tunnel.tcp_spec[0] = spec
        if old is not None:
            old.close()
        return tunnel

    def find_internal(self, url: str) -> RunningTunnel | None:
        """The internal endpoint a forward-internal `url` names, if this agent runs it."""
        key = internal_key(url)
        return self._internal.get(key) if key is not None else None

    def _find_internal_http(self, url: str) -> TunnelContext | None:
        tunnel = self.find_internal(url)
        return tunnel.http if tunnel is not None else None

    def _internal_finder(self, proto: str) -> Callable[[str], RunningTunnel | None]:
        """forward-internal for a TCP or TLS endpoint: internal endpoints of the same protocol only
        (ngrok refuses a cross-protocol forward, ERR_NGROK_3502)."""

        def find(url: str) -> RunningTunnel | None:
            tunnel = self.find_internal(url)
            return tunnel if tunnel is not None and tunnel.spec.proto == proto else None

        return find

    async def _open(self, spec: TunnelSpec) -> RunningTunnel:
        loop = asyncio.get_running_loop()
        metrics = TunnelMetrics()
        if spec.policy is not None:
            try:
                for action in spec.policy.actions():
                    await action.prepare()
            except PolicyError as error:
                raise TunnelConfigError(str(error)) from None
        if spec.internal:
            key = internal_key(spec.internal_url)
            if key is None:
                raise TunnelConfigError(f"invalid internal endpoint URL {spec.internal_url!r}")
            if key in self._internal:
                raise TunnelExists(f"the internal endpoint {spec.internal_url} is already running")
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
            context.find_internal = self._find_internal_http
            http_context = context

            def factory() -> asyncio.Protocol:
                return ClientConnection(http_context)
        else:
            endpoint_facts: list[EndpointFacts] = []  # set once the listener is bound
            current = [spec]  # swap_policy puts a new spec here: new connections take it

            def factory() -> asyncio.Protocol:
                return PublicSide(current[0], metrics, tcp_connections, endpoint_facts[0], same_proto)

            same_proto = self._internal_finder(spec.proto)

        if spec.internal:
            tunnel = RunningTunnel(
                spec=spec,
                tunnel_id=uuid.uuid4().hex,
                public_url=spec.internal_url,
                metrics=metrics,
                server=None,
                http=context,
                tcp_connections=tcp_connections,
            )
            self._set_endpoint(tunnel, context, None)
            self._internal[internal_key(spec.internal_url)] = tunnel  # type: ignore[index]
            self._tunnels[spec.name] = tunnel
            return tunnel
        if spec.pooling_enabled and spec.listen_port:
            joined = self._join_pool(spec, metrics, context, tcp_connections, factory)
            if joined is not None:
                if context is None:
                    endpoint_facts.append(self._set_endpoint(joined, None, spec.listen_port))
                    joined.tcp_spec = current
                return joined
        pool = ListenerPool() if spec.pooling_enabled else None
        try:
            if self.reuse_port and self.port_owner and spec.listen_port:
                await _check_port_free(spec.listen_host, spec.listen_port)
            server = await loop.create_server(
                pool.connection if pool is not None else factory,
                spec.listen_host,
                spec.listen_port,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
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
            pool=pool,
            factory=factory,
        )
        if pool is not None:
            pool.server = server
            pool.members.append(tunnel)
            self._pools[(spec.listen_host, port)] = pool
        facts = self._set_endpoint(tunnel, context, port)
        if context is None:
            endpoint_facts.append(facts)
            tunnel.tcp_spec = current
        self._tunnels[spec.name] = tunnel
        return tunnel

    def _join_pool(
        self,
        spec: TunnelSpec,
        metrics: TunnelMetrics,
        context: TunnelContext | None,
        tcp_connections: set[PublicSide],
        factory: Callable[[], asyncio.Protocol],
    ) -> RunningTunnel | None:
        """Join the pooled listener on the spec's address, if there is one (same protocol only)."""
        pool = self._pools.get((spec.listen_host, spec.listen_port))
        if pool is None or not pool.members:
            return None
        first = pool.members[0]
        if first.spec.proto != spec.proto or first.spec.public_tls != spec.public_tls:
            raise TunnelStartError(f"the pooled endpoint {first.public_url} is {first.spec.proto}, not {spec.proto}")
        tunnel = RunningTunnel(
            spec=spec,
            tunnel_id=uuid.uuid4().hex,
            public_url=first.public_url,
            metrics=metrics,
            server=pool.server,
            http=context,
            tcp_connections=tcp_connections,
            pool=pool,
            factory=factory,
        )
        pool.members.append(tunnel)
        self._set_endpoint(tunnel, context, spec.listen_port)
        self._tunnels[spec.name] = tunnel
        return tunnel

    @staticmethod
    def _set_endpoint(tunnel: RunningTunnel, context: TunnelContext | None, port: int | None) -> EndpointFacts:
        parts = urlsplit(tunnel.public_url)
        facts = EndpointFacts(
            id=tunnel.tunnel_id,
            name=tunnel.name,
            url=tunnel.public_url,
            host=parts.hostname or "",
            port=port if port is not None else (parts.port or (443 if parts.scheme in ("https", "tls") else 80)),
            protocol=tunnel.spec.proto,
            upstream_url=tunnel.spec.addr,
        )
        if context is not None:
            context.endpoint = facts
        tunnel.endpoint = facts
        return facts

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
        if tunnel.spec.internal:
            self._internal.pop(internal_key(tunnel.spec.internal_url), None)  # type: ignore[arg-type]
        closing = tunnel.server
        if tunnel.pool is not None:
            tunnel.pool.members.remove(tunnel)
            if tunnel.pool.members:
                closing = None  # the other members keep the listener
            else:
                self._pools = {key: pool for key, pool in self._pools.items() if pool is not tunnel.pool}
        if closing is not None:
            closing.close()
            # A connection accepted just before the close is made on the loop's next turn (asyncio
            # and uvloop schedule connection_made): let it in, so the aborts below reach it too.
            # Else it is served after its tunnel stopped, after the sink closed (agent shutdown),
            # its capture lost or left "in progress".
            await asyncio.sleep(0)
        if tunnel.spec.policy is not None:
            tunnel.spec.policy.close()
        if tunnel.http is not None:
            for connection in list(tunnel.http.connections):
                connection.abort()
            tunnel.http.pool.close()
        for side in list(tunnel.tcp_connections):
            side.abort()
        # abort() has connection_lost run on the next turn, where an exchange cut short hands its
        # final capture (499, a reason) to the sink: before this returns, so before a close of
        # the sink that may follow.
        await asyncio.sleep(0)
        if tunnel.file_server is not None:
            await tunnel.file_server.close()
        if closing is not None:
            await closing.wait_closed()
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

    async def replay(
        self, raw: bytes, tunnel_name: str, *, replay_of: str = "", through_policy: bool = False
    ) -> CaptureRecord:
        """Send stored request bytes straight to the tunnel's local service and capture the result.

        The tunnel's Traffic Policy is bypassed, as ngrok's inspector does: the bytes already went
        through it once. With `through_policy`, its on_http_request phase runs first (as for a
        client on 127.0.0.1): its answer is the replay's, or its changes go upstream; the trace is
        kept in the new capture. Returns when the new capture is stored.

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
        spec = tunnel.spec
        answer: bytes | None = None
        if through_policy and spec.policy is not None and tunnel.http is not None:
            raw, spec, answer = self._replay_policy(raw, tunnel.http, record)
        try:
            timeout = spec.response_timeout or self.upstream_timeout
            if answer is not None:
                status = record.status_code or 0
            else:
                status = await asyncio.wait_for(self._exchange(spec, raw, record), timeout)
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

    def _replay_policy(
        self, raw: bytes, context: TunnelContext, record: CaptureRecord
    ) -> tuple[bytes, TunnelSpec, bytes | None]:
        """Run on_http_request on replayed bytes: (bytes to send, whose service, the agent's answer)."""
        events = RequestParser().feed(raw)
        head = next(event for event in events if isinstance(event, RequestHead))
        body = b"".join(event.data for event in events if isinstance(event, Body))
        conn = ConnFacts(client_ip="127.0.0.1", client_port=0, server_ip="127.0.0.1", server_port=0, start=time.time())
        state = ExchangePolicy.start(
            context.spec.policy,  # type: ignore[arg-type]
            endpoint=context.endpoint,
            conn=conn,
            request=request_facts(head, scheme=context.public_scheme, start=time.time()),
            trace=record.policy_trace,
            internal_exists=context.has_internal,
        )
        state.request.body = body
        outcome = state.run(REQUEST)
        spec = context.spec
        if isinstance(outcome, ForwardInternal):
            target = self.find_internal(outcome.url)
            if target is not None:
                spec, outcome = target.spec, None
            elif outcome.on_error == "continue":
                outcome = None
            else:
                outcome = Respond(404, [("ngrok-error-code", "ERR_NGROK_3200")], b"The internal endpoint is offline.\n")
        if isinstance(outcome, Respond):
            page = answer_bytes(outcome, keep_alive=False, head_only=head.method == b"HEAD")
            record.add_response(page)
            record.status_code = outcome.status
            return raw, spec, page
        if isinstance(outcome, CloseConnection):
            record.status_code = 444
            record.response_raw = bytearray()
            record.mark_incomplete(response=True, reason="the traffic policy closed the connection (close-connection)")
            return raw, spec, b""
        changed = policy_head(head, state.request)
        start = raw.find(b"\r\n\r\n") + 4
        return request_head_bytes(changed) + raw[start:], spec, None

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
            if spec.proxy_protocol:
                # A replay has no client connection: PROXY UNKNOWN (v1) / LOCAL (v2), as HAProxy's
                # spec says for connections the proxy makes on its own.
                writer.write(proxy_header(spec.proxy_protocol, None, None))
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


def internal_key(url: str) -> tuple[str, int] | None:
    """(host, port) of an internal endpoint URL: `https://api.internal` -> ("api.internal", 443)."""
    text = url if "://" in url else f"https://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    default = {"http": 80, "https": 443, "tls": 443}.get(parts.scheme.lower(), 0)
    return parts.hostname.lower(), port or default


async def _check_port_free(host: str, port: int) -> None:
    """Bind (host, port) without SO_REUSEPORT and let go: OSError (EADDRINUSE) when any socket
    holds it, SO_REUSEPORT ones included."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as create_server binds
            probe.bind(address)


def _fail(record: CaptureRecord, status: int, detail: str) -> int:
    record.restart_response()
    record.add_response(error_response(status, detail))
    return status
