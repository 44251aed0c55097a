"""Engine.stop_tunnel against a connection the listener accepted just before it closed.

asyncio (and uvloop) call a new connection's `connection_made` on the loop's next turn after the
accept. A stop that runs in between must still reach that connection: otherwise it is served
after its tunnel stopped, after the process's capture sink closed (`--workers` closes a worker's
engine, then its sink), and its capture is lost or left "in progress". In-process, one loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentapi.engine import engine as engine_module
from agentapi.engine.engine import Engine
from agentapi.engine.http_proxy import ClientConnection
from agentapi.engine.tunnel_spec import parse_definition
from tests.support.upstream import start_upstream


async def test_a_connection_accepted_as_the_tunnel_stops_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = start_upstream()
    engine = Engine(sink=None, capture_limit=1 << 20, upstream_timeout=2)
    engine.start()
    try:
        (spec,) = parse_definition({"proto": "http", "addr": str(upstream.port)}, name="t", public_host="127.0.0.1")
        tunnel = await engine.start_tunnel(spec)
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[Any]] = []
        accepted = asyncio.Event()

        def accept_then_stop(context: Any) -> asyncio.Protocol:
            # Called by the listener's protocol factory at the accept: the stop's first step is
            # scheduled before the transport schedules connection_made.
            stopping.append(loop.create_task(engine.stop_tunnel("t")))
            accepted.set()
            return ClientConnection(context)

        monkeypatch.setattr(engine_module, "ClientConnection", accept_then_stop)
        server: Any = tunnel.server
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(20):
            await accepted.wait()
            await stopping[0]
            try:
                answer = await reader.read()  # until the agent ends the connection
            except ConnectionResetError:  # aborted
                answer = b""
        writer.close()
        assert answer == b""  # cut, never answered once the tunnel stopped
        assert [r.path for r in upstream.received] == []
    finally:
        await engine.close()
        upstream.close()
