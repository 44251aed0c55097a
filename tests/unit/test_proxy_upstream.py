"""The upstream side of the HTTP proxy in-process (tests/support/proxy_mocks.py): the pool's return
rules, retries after a lost reused connection, the response head limit, bodies that must not reach
the client, close-delimited responses, the service failing, and TCP_QUICKACK."""

from __future__ import annotations

import socket

import pytest

from agentapi.engine.upstream import MAX_IDLE_UPSTREAMS, UpstreamConnection
from tests.support.proxy_mocks import RESET, FakeSocket, MockTransport, ProxyHarness, settle

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def request(method: bytes = b"GET", path: bytes = b"/", *, extra: bytes = b"", body: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body or method == b"POST" else b""
    return b"%s %s HTTP/1.1\r\nHost: x\r\n%s%s\r\n%s" % (method, path, length, extra, body)


async def pooled(proxy: ProxyHarness) -> UpstreamConnection:
    """One exchange on a fresh connection, so that the next request reuses it."""
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.received()
    proxy.service.answer(OK)
    [upstream] = proxy.idle
    return upstream


# --- the pool --------------------------------------------------------------------------------


async def test_a_connection_readable_while_idle_is_never_handed_a_request() -> None:
    proxy = ProxyHarness()
    stale = await pooled(proxy)
    stale.readable = lambda: True  # type: ignore[method-assign]  # the service closed it meanwhile
    client = proxy.connect()
    client.send(request(path=b"/next"))
    await settle()
    assert stale.closed
    assert len(proxy.services) == 2 and proxy.service.received().startswith(b"GET /next ")


async def test_readable_tells_bytes_and_an_end_the_loop_has_not_delivered() -> None:
    proxy = ProxyHarness()
    ours, service = socket.socketpair()
    with ours, service:
        upstream = UpstreamConnection(proxy.context.pool)
        upstream.connection_made(MockTransport(sock=ours))
        assert not upstream.readable()
        assert not upstream.readable()  # asked again: the same poll object, the same answer
        service.send(b"x")
        assert upstream.readable()
        ours.recv(1)
        assert not upstream.readable()
        service.close()
        assert upstream.readable()  # the end of stream


async def test_only_an_idle_connection_goes_back_to_the_pool() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.transport.write_buffer_size = 10  # a request still being written
    proxy.service.answer(OK)
    assert proxy.idle == [] and proxy.service.transport.closed


async def test_a_response_that_closes_is_not_pooled_and_closes_the_client_as_it_says() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    proxy.service.answer(response)
    assert proxy.idle == [] and proxy.service.transport.closed
    assert client.received() == response and client.closed  # forwarded untouched, so honoured


async def test_the_pool_keeps_at_most_its_limit_and_closes_on_stop() -> None:
    proxy = ProxyHarness()
    pool = proxy.context.pool
    upstreams = []
    for _ in range(MAX_IDLE_UPSTREAMS + 1):
        upstream = UpstreamConnection(pool)
        upstream.connection_made(MockTransport())
        upstreams.append(upstream)
        pool.give_back(upstream)
    assert len(proxy.idle) == MAX_IDLE_UPSTREAMS and upstreams[-1].closed
    assert pool.take() is upstreams[-2]  # newest first
    pool.close()
    assert proxy.idle == [] and upstreams[0].closed
    late = UpstreamConnection(pool)
    late.connection_made(MockTransport())
    pool.give_back(late)
    assert late.closed  # a dial that finished after the tunnel stopped


async def test_the_sweep_closes_connections_idle_for_long() -> None:
    proxy = ProxyHarness()
    upstream = await pooled(proxy)
    pool = proxy.context.pool
    pool._idle = [(since - 21, u) for since, u in pool._idle]
    pool.sweep()
    assert upstream.closed and proxy.idle == []


async def test_bytes_nobody_asked_for_close_an_idle_connection() -> None:
    proxy = ProxyHarness()
    upstream = await pooled(proxy)
    upstream.data_received(b"HTTP/1.1 200 OK\r\n")
    assert upstream.closed
    upstream.connection_lost(None)
    assert proxy.idle == []


# --- retries ---------------------------------------------------------------------------------


async def test_a_get_lost_by_a_reused_connection_is_sent_again_on_a_fresh_one() -> None:
    proxy = ProxyHarness()
    await pooled(proxy)
    client = proxy.connect()
    client.send(request(path=b"/again"))
    await settle()
    first = proxy.service
    sent = first.received()
    first.lose()  # closed without a byte of answer
    await settle()
    assert len(proxy.services) == 2
    second = proxy.service
    assert second.received() == sent and not second.protocol.reused
    second.answer(OK)
    assert client.received() == OK
    record = proxy.sink.records[-1]
    assert record.status_code == 200 and record.complete and record.response_complete


@pytest.mark.parametrize(
    ("method", "extra", "error", "retried"),
    [
        (b"POST", b"", None, False),  # the service may have acted on it
        (b"POST", b"", ConnectionResetError(104, "reset"), True),  # a reset: it never read it
        (b"POST", b"Idempotency-Key: k1\r\n", None, True),
        (b"PUT", b"", BrokenPipeError(32, "pipe"), True),
        (b"DELETE", b"", None, False),
        (b"HEAD", b"", None, True),
        (b"OPTIONS", b"", None, True),
    ],
)
async def test_what_a_lost_reused_connection_resends(
    method: bytes, extra: bytes, error: Exception | None, retried: bool
) -> None:
    proxy = ProxyHarness()
    await pooled(proxy)
    client = proxy.connect()
    client.send(request(method, extra=extra))
    await settle()
    proxy.service.received()
    proxy.service.lose(error)
    await settle()
    assert (len(proxy.services) == 2) is retried
    if not retried:
        out = client.received()
        assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert client.closed
        assert proxy.sink.records[-1].status_code == 502


async def test_a_request_is_not_resent_when_its_body_is_not_all_sent() -> None:
    proxy = ProxyHarness()
    await pooled(proxy)
    client = proxy.connect()
    client.send(b"PUT / HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    proxy.service.lose()
    assert client.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert len(proxy.services) == 1


async def test_a_request_larger_than_what_is_kept_is_not_resent() -> None:
    proxy = ProxyHarness()
    await pooled(proxy)
    client = proxy.connect()
    client.send(request(b"POST", extra=b"Idempotency-Key: k\r\n", body=b"x" * (64 * 1024 + 1)))
    await settle()
    proxy.service.lose(ConnectionResetError(104, "reset"))
    assert client.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert len(proxy.services) == 1


async def test_a_fresh_connection_lost_is_not_retried() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.lose(ConnectionResetError(104, "Connection reset by peer"))
    out = client.received()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"the local service reset the connection" in out
    assert len(proxy.services) == 1


async def test_a_retry_happens_once() -> None:
    proxy = ProxyHarness()
    await pooled(proxy)
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.lose()
    await settle()
    proxy.service.lose(ConnectionResetError(104, "reset"))
    await settle()
    assert len(proxy.services) == 2
    assert client.received().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")


async def test_an_answerless_end_waits_for_the_reset_that_says_the_request_was_never_read() -> None:
    proxy = ProxyHarness()
    upstream = await pooled(proxy)
    client = proxy.connect()
    client.send(request(b"POST", body=b"abc"))
    await settle()
    first = proxy.service
    first.received()
    upstream.socket = FakeSocket(so_error=RESET)  # type: ignore[assignment]  # a stand-in socket
    assert upstream.eof_received() is True  # keep it open a moment
    assert upstream.eof_timer is not None
    upstream.eof_timer.cancel()
    upstream.settle_eof()
    await settle()
    assert first.transport.closed
    assert len(proxy.services) == 2
    assert proxy.service.received().endswith(b"\r\n\r\nabc")


async def test_an_answerless_end_without_a_reset_is_a_502_for_a_post() -> None:
    proxy = ProxyHarness()
    upstream = await pooled(proxy)
    client = proxy.connect()
    client.send(request(b"POST", body=b"abc"))
    await settle()
    upstream.socket = FakeSocket(so_error=0)  # type: ignore[assignment]  # a stand-in socket
    assert upstream.eof_received() is True
    assert upstream.eof_timer is not None
    upstream.eof_timer.cancel()
    upstream.settle_eof()
    out = client.received()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"closed the connection without answering" in out


async def test_a_connection_lost_after_the_answer_started_closes_the_client() -> None:
    proxy = ProxyHarness()
    await pooled(proxy)
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    proxy.service.lose()
    await settle()
    assert len(proxy.services) == 1
    assert client.received().endswith(b"abc") and client.closed
    record = proxy.sink.records[-1]
    assert record.status_code == 200 and not record.response_complete
    assert record.incomplete_reason == "the local service closed the connection before the response was complete"


# --- the service failing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "detail"),
    [
        (ConnectionRefusedError(111, "refused"), b"502", b"at 127.0.0.1:8080: connection refused"),
        (OSError(113, "No route to host"), b"502", b"at 127.0.0.1:8080: No route to host"),
        (TimeoutError(), b"504", b"timed out connecting to the local service"),
    ],
)
async def test_a_failed_dial_is_the_agents_error_page(failure: BaseException, status: bytes, detail: bytes) -> None:
    proxy = ProxyHarness()
    proxy.dial_failures.append(failure)
    client = proxy.connect()
    client.send(request())
    await settle()
    out = client.received()
    assert out.startswith(b"HTTP/1.1 " + status) and detail in out
    assert client.closed
    [record] = proxy.sink.records
    assert record.status_code == int(status) and bytes(record.response_raw or b"") == out


async def test_a_response_head_over_the_limit_is_a_502_and_never_half_forwarded() -> None:
    proxy = ProxyHarness(response_head_limit=100)
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 50 + b"\r\n")
    assert client.received() == b""  # held until complete
    proxy.service.answer(b"X-Big: " + b"b" * 50 + b"\r\n")
    out = client.received()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and b"larger than 100 bytes" in out
    assert proxy.service.transport.closed and client.closed
    [record] = proxy.sink.records
    assert record.status_code == 502 and bytes(record.response_raw or b"") == out


async def test_a_head_in_pieces_is_forwarded_whole() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-")
    proxy.service.answer(b"Length: 2\r\n")
    assert client.received() == b""
    proxy.service.answer(b"\r\nok")
    assert client.received() == OK


async def test_a_malformed_response_is_a_502() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.answer(b"HTTP/1.1 abc\r\n\r\n")
    out = client.received()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and b"malformed response from upstream" in out
    assert proxy.service.transport.closed


async def test_a_body_that_breaks_off_closes_the_client() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
    proxy.service.answer(b"zz\r\n")
    assert client.closed and proxy.service.transport.closed
    [record] = proxy.sink.records
    assert record.status_code == 200 and not record.response_complete
    assert record.incomplete_reason.startswith("the response broke off: malformed response from upstream")


# --- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "head"),
    [
        (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"),
    ],
)
async def test_a_body_after_a_response_that_has_none_is_dropped(method: bytes, head: bytes) -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request(method))
    await settle()
    proxy.service.answer(head + b"hello")
    assert client.received() == head
    assert proxy.idle == [] and proxy.service.transport.closed  # those bytes belong to no request
    assert client.closed


@pytest.mark.parametrize("body", [b"hello", b"hel", b"hello world"])
async def test_a_body_after_the_answer_to_head_is_dropped(body: bytes) -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request(b"HEAD"))
    await settle()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    proxy.service.answer(head + body)
    assert client.received() == head
    assert proxy.idle == [] and proxy.service.transport.closed
    [record] = proxy.sink.records
    assert bytes(record.response_raw or b"") == head


async def test_a_head_response_ends_without_a_body() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request(b"HEAD"))
    await settle()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    proxy.service.answer(head)
    assert client.received() == head
    assert proxy.idle == [proxy.service.protocol]


async def test_a_close_delimited_response_ends_when_the_service_closes() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
    assert not client.closed
    proxy.service.answer(b"part two")
    proxy.service.lose()
    assert client.received() == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, part two"
    assert client.closed  # the only way to say where it ended
    [record] = proxy.sink.records
    assert record.complete and record.response_complete and record.status_code == 200


async def test_interim_responses_are_forwarded_before_the_final_one() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    await settle()
    proxy.service.answer(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert client.received() == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(b"ab")
    assert proxy.service.received().endswith(b"\r\n\r\nab")
    proxy.service.answer(OK)
    assert client.received() == OK
    assert not client.closed
    # The interim answer came before the whole request: the connection is not reused.
    assert proxy.idle == [] and proxy.service.transport.closed


# --- TCP_QUICKACK ----------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
async def test_every_read_that_does_not_finish_the_response_is_acknowledged_at_once() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(request())
    await settle()
    sock = FakeSocket()
    proxy.service.protocol.socket = sock  # type: ignore[assignment]  # a stand-in socket
    proxy.service.answer(b"HTTP/1.1 200 OK\r\n")  # head not complete
    proxy.service.answer(b"Content-Length: 4\r\n\r\nab")  # head, part of the body
    assert sock.quickacks == 2
    proxy.service.answer(b"cd")  # the end: nothing is waiting for an acknowledgement
    assert sock.quickacks == 2
