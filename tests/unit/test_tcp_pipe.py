"""The TCP pipe driven in-process: mock transports for the client and the local service, the dial
replaced by one that hands back the service's side. Bytes, EOFs and pauses in, bytes and calls out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentapi.engine import tcp_pipe
from agentapi.engine.metrics import TunnelMetrics
from agentapi.engine.tcp_pipe import PublicSide
from agentapi.engine.tunnel_spec import parse_definition
from tests.support.proxy_mocks import MockTransport


class PipeTransport(MockTransport):
    """A MockTransport that can half-close, as a TCP transport can."""

    def __init__(self) -> None:
        super().__init__()
        self.eof_written = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True


class Pipe:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, before_link: Callable[[Any], None] | None = None) -> None:
        self.client = PipeTransport()
        self.service = PipeTransport()
        self.metrics = TunnelMetrics()
        self.connections: set[PublicSide] = set()
        self.local: Any = None
        self.dialled = asyncio.Event()

        async def dial(factory: Callable[[], Any], host: str, port: int, *, ssl_context: Any) -> tuple[Any, Any]:
            await self.dialled.wait()
            protocol = factory()
            protocol.connection_made(self.service)
            self.local = protocol
            if before_link is not None:
                before_link(protocol)  # what the service sent before the pipe was linked
            return self.service, protocol

        monkeypatch.setattr(tcp_pipe, "dial", dial)
        [spec] = parse_definition({"proto": "tcp", "addr": "5432"}, name="db", public_host="127.0.0.1")
        self.public = PublicSide(spec, self.metrics, self.connections)
        self.public.connection_made(self.client)

    async def link(self) -> None:
        self.dialled.set()
        for _ in range(20):
            await asyncio.sleep(0)


async def test_bytes_sent_before_the_dial_completes_arrive_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch)
    pipe.public.data_received(b"early ")
    pipe.public.data_received(b"bytes")
    await pipe.link()
    assert pipe.service.take() == b"early bytes"
    pipe.public.data_received(b" then more")
    assert pipe.service.take() == b" then more"
    assert pipe.metrics.snapshot()["conns"]["gauge"] == 1


async def test_a_service_that_speaks_first_is_heard(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch, before_link=lambda local: local.data_received(b"SSH-2.0-OpenSSH_9.6\r\n"))
    await pipe.link()
    assert pipe.client.take() == b"SSH-2.0-OpenSSH_9.6\r\n"
    pipe.local.data_received(b"more")
    assert pipe.client.take() == b"more"


async def test_an_early_flood_pauses_the_client_once_and_resumes_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch)
    for _ in range(5):
        pipe.public.data_received(b"x" * 100_000)
    assert pipe.client.events == ["pause"]
    await pipe.link()
    assert len(pipe.service.take()) == 500_000
    assert pipe.client.events == ["pause", "resume"]


async def test_a_full_side_pauses_the_other_in_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch)
    await pipe.link()
    pipe.local.pause_writing()  # the service's write buffer is full: stop reading the client
    pipe.local.pause_writing()
    pipe.local.resume_writing()
    pipe.local.resume_writing()
    assert pipe.client.events == ["pause", "resume"]


async def test_a_half_close_is_passed_on_and_the_pipe_closes_when_both_are_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe = Pipe(monkeypatch)
    await pipe.link()
    assert pipe.public.eof_received() is True  # keep the service's direction open
    assert pipe.service.eof_written
    pipe.local.data_received(b"last words")
    assert pipe.client.take() == b"last words"
    assert pipe.local.eof_received() is None  # both directions done: close
    pipe.local.connection_lost(None)
    assert pipe.client.closed


async def test_an_eof_before_the_dial_is_passed_on_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipe(monkeypatch)
    pipe.public.data_received(b"QUIT\r\n")
    assert pipe.public.eof_received() is True
    await pipe.link()
    assert pipe.service.take() == b"QUIT\r\n"
    assert pipe.service.eof_written


async def test_a_failed_dial_closes_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(tcp_pipe, "dial", refused)
    [spec] = parse_definition({"proto": "tcp", "addr": "5432"}, name="db", public_host="127.0.0.1")
    client = PipeTransport()
    metrics = TunnelMetrics()
    public = PublicSide(spec, metrics, set())
    public.connection_made(client)
    for _ in range(20):
        await asyncio.sleep(0)
    assert client.closed
    assert metrics.snapshot()["conns"]["count"] == 0
