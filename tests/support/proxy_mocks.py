"""The HTTP proxy's protocol objects driven in-process: mock transports instead of sockets.

As uvicorn's tests/protocols/test_http.py does: a `MockTransport` records what is written, every
pause and resume, and the close; a test feeds bytes into `data_received` and asserts on the bytes
that come out. `ProxyHarness` builds a TunnelContext whose pool dials mock upstreams, so a test
plays both the client and the local service. Only dialling runs as a task on the loop
(`settle()` lets it run); timers are driven by calling the timeout methods directly.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import deque
from typing import Any

from agentapi.engine.capture_id import CaptureIdFactory
from agentapi.engine.capture_record import CaptureRecord
from agentapi.engine.http_proxy import ClientConnection, TunnelContext
from agentapi.engine.metrics import TunnelMetrics
from agentapi.engine.tunnel_spec import TunnelSpec, parse_definition
from agentapi.engine.upstream import UpstreamConnection

CLIENT_PEER = ("198.51.100.7", 40000)


class MockTransport(asyncio.Transport):
    """Records writes, pauses and resumes (in order, in `events`) and closes; fails on a double
    pause or a resume without a pause, as a pairing bug would leave a real transport stuck."""

    def __init__(self, *, peer: tuple[str, int] = CLIENT_PEER, sock: Any = None) -> None:
        super().__init__({"peername": peer, "socket": sock})
        self.written = bytearray()
        self.events: list[str] = []
        self.reading = True
        self.closed = False
        self.aborted = False
        self.write_buffer_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def take(self) -> bytes:
        """What was written since the last take."""
        data, self.written = bytes(self.written), bytearray()
        return data

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False
        self.events.append("pause")

    def resume_reading(self) -> None:
        assert not self.reading, "resumed without a pause"
        self.reading = True
        self.events.append("resume")

    def get_write_buffer_size(self) -> int:
        return self.write_buffer_size

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.events.append("close")
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.close()


class FakeSocket:
    """Enough of a socket for TCP_QUICKACK and the reset check after an answerless end."""

    def __init__(self, so_error: int = 0) -> None:
        self.so_error = so_error
        self.quickacks = 0

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if level == socket.IPPROTO_TCP and option == getattr(socket, "TCP_QUICKACK", None):
            self.quickacks += 1

    def getsockopt(self, level: int, option: int) -> int:
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR)
        return self.so_error


RESET = errno.ECONNRESET


class RecordingSink:
    """Stands in for CaptureSink: keeps every record it is handed, and how often."""

    def __init__(self) -> None:
        self.handed: list[CaptureRecord] = []

    def record(self, record: CaptureRecord) -> None:
        self.handed.append(record)

    def frames(self, record: CaptureRecord, *, final: bool = False) -> None:
        """WebSocket frames of a record are stored later by the real sink; here they stay on it."""

    @property
    def records(self) -> list[CaptureRecord]:
        unique: dict[str, CaptureRecord] = {}
        for record in self.handed:
            unique.setdefault(record.id, record)
        return list(unique.values())


def http_spec(**definition: Any) -> TunnelSpec:
    definition.setdefault("addr", "127.0.0.1:8080")
    [spec] = parse_definition(definition, name="web", public_host="127.0.0.1")
    return spec


class Service:
    """One mock connection to the local service: the UpstreamConnection and its transport."""

    def __init__(self, protocol: UpstreamConnection, transport: MockTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def received(self) -> bytes:
        return self.transport.take()

    def answer(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def lose(self, exc: Exception | None = None) -> None:
        self.transport.closed = True
        self.protocol.connection_lost(exc)


class Client:
    """One mock public connection: the ClientConnection and its transport."""

    def __init__(self, protocol: ClientConnection, transport: MockTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def received(self) -> bytes:
        return self.transport.take()

    def leave(self) -> None:
        self.transport.closed = True
        self.protocol.connection_lost(None)

    @property
    def closed(self) -> bool:
        return self.transport.closed


class ProxyHarness:
    """A tunnel context whose pool dials mock services; create it inside a running loop."""

    def __init__(
        self,
        spec: TunnelSpec | None = None,
        *,
        inspect: bool = True,
        upstream_timeout: float = 5.0,
        response_head_limit: int = 64 * 1024,
        capture_limit: int = 1 << 20,
    ) -> None:
        self.sink = RecordingSink()
        self.context = TunnelContext(
            spec=spec or http_spec(),
            metrics=TunnelMetrics(),
            sink=self.sink if inspect else None,  # type: ignore[arg-type]
            ids=CaptureIdFactory(),
            capture_limit=capture_limit,
            upstream_timeout=upstream_timeout,
            response_head_limit=response_head_limit,
        )
        self.services: list[Service] = []
        self.dial_failures: deque[BaseException] = deque()
        self.context.pool.connect = self._dial  # type: ignore[method-assign]

    async def _dial(self, timeout: float) -> UpstreamConnection:
        if self.dial_failures:
            raise self.dial_failures.popleft()
        protocol = UpstreamConnection(self.context.pool)
        transport = MockTransport(peer=("127.0.0.1", 8080))
        protocol.connection_made(transport)
        self.services.append(Service(protocol, transport))
        return protocol

    def connect(self, peer: tuple[str, int] = CLIENT_PEER) -> Client:
        protocol = ClientConnection(self.context)
        transport = MockTransport(peer=peer)
        protocol.connection_made(transport)
        return Client(protocol, transport)

    @property
    def service(self) -> Service:
        """The connection dialled last."""
        return self.services[-1]

    @property
    def idle(self) -> list[UpstreamConnection]:
        return [upstream for _, upstream in self.context.pool._idle]


async def settle() -> None:
    """Let the dial tasks the proxy started run (they finish without waiting on anything)."""
    for _ in range(5):
        await asyncio.sleep(0)
