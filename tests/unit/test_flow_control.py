"""Back-pressure both ways and the pairing of every pause with its resume: FlowControl alone, then
through the proxy with mock transports (tests/support/proxy_mocks.py)."""

from __future__ import annotations

from agentapi.engine.flow_control import UPSTREAM_FULL, WAITING, FlowControl
from agentapi.engine.upstream import UpstreamConnection
from tests.support.proxy_mocks import MockTransport, ProxyHarness, settle

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class FakeUpstream:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")


def flow() -> tuple[FlowControl, MockTransport]:
    control = FlowControl()
    control.transport = transport = MockTransport()
    return control, transport


def test_reading_pauses_with_the_first_reason_and_resumes_with_the_last() -> None:
    control, transport = flow()
    control.pause(WAITING)
    control.pause(UPSTREAM_FULL)
    control.pause(WAITING)
    control.resume(WAITING)
    assert transport.events == ["pause"]
    control.resume(UPSTREAM_FULL)
    assert transport.events == ["pause", "resume"]


def test_lifting_a_reason_that_is_not_set_does_nothing() -> None:
    control, transport = flow()
    control.resume(WAITING)
    control.pause(UPSTREAM_FULL)
    control.resume(WAITING)  # not someone else's pause
    assert transport.events == ["pause"] and control.reasons == UPSTREAM_FULL


def test_nothing_is_paused_or_resumed_once_the_connection_is_gone() -> None:
    control, transport = flow()
    control.pause(WAITING)
    control.transport = None
    control.resume(WAITING)
    control.pause(UPSTREAM_FULL)
    assert transport.events == ["pause"]


def test_a_full_client_pauses_its_upstream_until_it_drains() -> None:
    control, _ = flow()
    upstream = FakeUpstream()
    control.client_full(upstream)  # type: ignore[arg-type]
    control.client_full(upstream)  # type: ignore[arg-type]
    assert upstream.events == ["pause"]
    control.client_drained()
    assert upstream.events == ["pause", "resume"] and control.paused_upstream is None


def test_an_upstream_attached_while_the_client_is_full_is_paused_at_once() -> None:
    control, _ = flow()
    control.client_full(None)
    upstream = FakeUpstream()
    control.attach(upstream)  # type: ignore[arg-type]
    assert upstream.events == ["pause"]
    control.client_drained()
    assert upstream.events == ["pause", "resume"]


def test_detaching_undoes_the_pauses_both_ways() -> None:
    control, transport = flow()
    upstream = FakeUpstream()
    control.client_full(upstream)  # type: ignore[arg-type]
    control.upstream_full(True)
    control.detach(upstream)  # type: ignore[arg-type]
    assert upstream.events == ["pause", "resume"]
    assert transport.events == ["pause", "resume"]
    other = FakeUpstream()
    control.detach(other)  # type: ignore[arg-type]  # not the paused one: left alone
    assert other.events == []


# --- through the proxy -----------------------------------------------------------------------


async def test_a_full_upstream_pauses_reading_from_the_client() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    assert client.transport.events == ["pause", "resume"]  # while dialling
    proxy.service.protocol.pause_writing()
    assert not client.transport.reading
    proxy.service.protocol.resume_writing()
    assert client.transport.reading


async def test_a_full_client_pauses_reading_from_the_upstream() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    service = proxy.service
    service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    client.protocol.pause_writing()
    assert not service.transport.reading and not service.protocol.reading
    client.protocol.resume_writing()
    assert service.transport.reading
    assert service.transport.events == ["pause", "resume"]


async def test_an_upstream_paused_by_a_full_client_is_resumed_before_it_is_pooled() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    service = proxy.service
    service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    client.protocol.pause_writing()
    service.answer(b"cd")  # already read by the loop when reading paused
    assert proxy.idle == [service.protocol] and service.transport.reading
    assert client.protocol.flow.paused_upstream is None
    client.protocol.resume_writing()  # the client drains later: the pooled upstream is not touched
    assert service.transport.events == ["pause", "resume"]


async def test_a_client_full_when_its_next_upstream_is_attached_pauses_that_one() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.protocol.pause_writing()
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await settle()
    assert not proxy.service.protocol.reading
    client.protocol.resume_writing()
    assert proxy.service.protocol.reading


async def test_the_client_is_resumed_when_the_upstream_that_filled_up_leaves() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    proxy.service.protocol.pause_writing()
    assert not client.transport.reading
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # answered early
    assert client.transport.reading  # resumed before the close, never left paused
    assert client.transport.events == ["pause", "resume", "pause", "resume", "close"]


async def test_every_pause_of_a_pipelined_burst_is_paired() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    burst = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(50))
    client.send(burst)
    await settle()
    for _ in range(50):
        proxy.service.answer(OK)
    assert client.received() == OK * 50
    assert client.transport.reading
    assert client.transport.events.count("pause") == client.transport.events.count("resume")
    assert [upstream.reading for upstream in proxy.idle] == [True]


def test_an_upstream_pauses_only_while_open() -> None:
    upstream = UpstreamConnection(pool=None)  # type: ignore[arg-type]
    transport = MockTransport()
    upstream.connection_made(transport)
    upstream.pause_reading()
    upstream.pause_reading()
    upstream.resume_reading()
    upstream.close()
    upstream.pause_reading()
    assert transport.events == ["pause", "resume", "close"]
