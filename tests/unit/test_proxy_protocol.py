"""The public side of the HTTP proxy in-process: bytes into ClientConnection.data_received, bytes out
of mock transports, no sockets (tests/support/proxy_mocks.py). Pipelining, keep-alive, half-close,
upgrades, timeouts, refusals and what the capture records."""

from __future__ import annotations

import asyncio

import pytest

from agentapi.engine.http_exchange import COMPLETE, FINISHED, RECEIVING, STARTED, UPGRADED
from tests.support.proxy_mocks import ProxyHarness, http_spec, settle

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def get(path: str = "/", *, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"GET %s HTTP/%s\r\nHost: example.test\r\n%s\r\n" % (path.encode(), version, extra)


def forwarded(path: str = "/", *, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return (
        b"GET %s HTTP/%s\r\nHost: example.test\r\n%sX-Forwarded-For: 198.51.100.7\r\n"
        b"X-Forwarded-Host: example.test\r\nX-Forwarded-Proto: http\r\n\r\n" % (path.encode(), version, extra)
    )


# --- one exchange ----------------------------------------------------------------------------


async def test_it_forwards_a_rebuilt_head_and_the_response_untouched() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/a", extra=b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"))
    await settle()
    assert proxy.service.received() == forwarded("/a")
    response = b"HTTP/1.1 200 OK\r\nX-Odd:  spaced \r\nContent-Length: 2\r\n\r\nok"
    proxy.service.answer(response)
    assert client.received() == response
    assert not client.closed
    [record] = proxy.sink.records
    assert (record.status_code, record.complete, record.request_complete, record.response_complete) == (
        200,
        True,
        True,
        True,
    )
    assert bytes(record.request_raw) == forwarded("/a")
    assert bytes(record.response_raw or b"") == response


async def test_it_rechunks_a_chunked_body_and_records_it_after_the_head() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    await settle()
    client.send(b"0\r\n\r\n")
    sent = proxy.service.received()
    assert sent.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    [record] = proxy.sink.records
    assert bytes(record.request_raw) == sent


async def test_the_response_timeout_starts_at_the_end_of_the_request() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: 4\r\n\r\nab")
    await settle()
    exchange = client.protocol.current
    assert exchange is not None and not exchange.deadline  # still uploading
    assert client.protocol.response_timer is None
    client.send(b"cd")
    assert exchange.deadline and client.protocol.response_timer is not None
    exchange.deadline = asyncio.get_running_loop().time() - 1  # as if the timeout had passed
    client.protocol._response_timer_fired()
    assert client.received().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert client.closed and proxy.service.transport.closed
    [record] = proxy.sink.records
    assert record.status_code == 504 and record.complete


async def test_the_response_timer_fires_on_the_loop_and_answers_504() -> None:
    proxy = ProxyHarness(upstream_timeout=0.02)
    client = proxy.connect()
    client.send(get("/slow"))
    await settle()
    for _ in range(200):  # bounded: the timer is due after 20 ms of loop time
        if client.closed:
            break
        await asyncio.sleep(0.01)
    assert client.received().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert client.protocol.response_timer is None


async def test_one_response_timer_serves_a_keep_alive_connection() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/a"))
    await settle()
    timer = client.protocol.response_timer
    assert timer is not None
    proxy.service.answer(OK)
    client.send(get("/b"))
    assert client.protocol.response_timer is timer  # kept: it is due before /b's deadline
    exchange = client.protocol.current
    assert exchange is not None and exchange.deadline
    # Firing early for /a's deadline, it finds /b's later one and waits for that instead.
    client.protocol._response_timer_fired()
    assert client.protocol.response_timer is not None and client.protocol.response_timer is not timer
    assert client.protocol.response_timer_due == exchange.deadline
    proxy.service.answer(OK)
    assert not exchange.deadline  # answered: nothing to time out
    client.leave()
    assert client.protocol.response_timer is None


# --- pipelining and keep-alive ---------------------------------------------------------------


async def test_pipelined_requests_go_upstream_one_at_a_time_and_are_answered_in_order() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1") + get("/2") + get("/3"))
    await settle()
    service = proxy.service
    assert service.received() == forwarded("/1")  # the others wait their turn
    # Paused while dialling; resumed once the first is on its way (a read with more requests
    # pauses again: at most one read waits).
    assert client.transport.events == ["pause", "resume"]
    service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert service.received() == forwarded("/2")  # the same connection, from the pool
    service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
    service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3")
    assert client.received() == b"".join(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % n for n in (1, 2, 3))
    assert len(proxy.services) == 1
    assert client.transport.events == ["pause", "resume"]
    assert [record.uri for record in proxy.sink.records] == ["/1", "/2", "/3"]


async def test_a_waiting_requests_body_is_recorded_after_its_head() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1") + b"POST /2 HTTP/1.1\r\nHost: example.test\r\nContent-Length: 3\r\n\r\nabc")
    await settle()
    proxy.service.received()
    proxy.service.answer(OK)
    sent = proxy.service.received()
    assert sent.startswith(b"POST /2 HTTP/1.1\r\n") and sent.endswith(b"\r\n\r\nabc")
    second = proxy.sink.records[1]
    assert bytes(second.request_raw) == sent


async def test_a_keep_alive_connection_reuses_the_pooled_upstream() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1"))
    await settle()
    proxy.service.answer(OK)
    assert proxy.idle == [proxy.service.protocol]
    client.send(get("/2"))
    await settle()
    assert len(proxy.services) == 1 and proxy.service.protocol.reused
    assert proxy.service.received() == forwarded("/1") + forwarded("/2")


async def test_connection_close_from_the_client_stays_on_the_clients_side() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get(extra=b"Connection: close\r\n"))
    await settle()
    assert b"Connection" not in proxy.service.received()
    proxy.service.answer(OK)
    assert client.received() == OK
    assert client.closed
    assert proxy.idle == [proxy.service.protocol]  # the agent's own connection stays open


async def test_an_http_1_0_request_gets_an_upstream_of_its_own() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get(version=b"1.0", extra=b"Connection: keep-alive\r\n"))
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert proxy.idle == []
    assert proxy.service.transport.closed
    assert not client.closed  # the client asked for keep-alive


# --- bad bytes, timeouts ---------------------------------------------------------------------


async def test_bad_bytes_after_good_requests_are_answered_after_them() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1") + b"NOT HTTP AT ALL\r\n\r\n")
    await settle()
    assert client.received() == b""
    proxy.service.answer(OK)
    out = client.received()
    assert out.startswith(OK + b"HTTP/1.1 400 Bad Request\r\n")
    assert client.closed


async def test_bad_bytes_inside_a_request_are_answered_at_once() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert client.received().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert client.closed and proxy.services == [] and proxy.sink.records == []


async def test_a_request_head_that_never_completes_gets_408() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"GET / HTTP/1.1\r\nHost: exa")
    since = client.protocol.head_since
    client.protocol.check_timeouts(since + 29, head_timeout=30, idle_timeout=90)
    assert not client.closed
    client.protocol.check_timeouts(since + 31, head_timeout=30, idle_timeout=90)
    assert client.received().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert client.closed


async def test_an_idle_keep_alive_connection_is_closed_but_not_one_waiting_for_its_answer() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get())
    await settle()
    later = client.protocol.last_active + 91
    client.protocol.check_timeouts(later, head_timeout=30, idle_timeout=90)
    assert not client.closed  # an answer is still due
    proxy.service.answer(OK)
    client.received()
    client.protocol.check_timeouts(client.protocol.last_active + 89, head_timeout=30, idle_timeout=90)
    assert not client.closed
    client.protocol.check_timeouts(client.protocol.last_active + 91, head_timeout=30, idle_timeout=90)
    assert client.closed and client.received() == b""


async def test_the_sweep_checks_every_connection() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.protocol.last_active -= 1000
    proxy.context.sweep()
    assert client.closed


# --- half-close ------------------------------------------------------------------------------


async def test_a_half_closed_client_still_gets_its_response_then_the_connection_closes() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get())
    await settle()
    assert client.protocol.eof_received() is True  # keep the transport open for the answer
    proxy.service.answer(OK)
    assert client.received() == OK
    assert client.closed
    assert proxy.idle == [proxy.service.protocol]


async def test_a_half_closed_client_gets_every_pipelined_response() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1") + get("/2"))
    await settle()
    assert client.protocol.eof_received() is True
    proxy.service.answer(OK)
    assert not client.closed
    proxy.service.answer(OK)
    assert client.received() == OK + OK
    assert client.closed


async def test_a_client_ending_in_the_middle_of_a_request_is_let_go() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    assert client.protocol.eof_received() is None  # asyncio closes the transport
    client.leave()
    assert proxy.service.transport.closed
    [record] = proxy.sink.records
    assert record.status_code == 499
    assert not record.request_complete and not record.response_complete
    assert record.incomplete_reason == "the client closed the connection before the response"  # the first reason


async def test_a_half_closed_client_with_an_unfinished_pipelined_request_is_closed() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1") + b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    assert client.protocol.eof_received() is True
    proxy.service.answer(OK)
    assert client.received() == OK
    assert client.closed
    assert len(proxy.sink.records) == 1  # the cut one never began


# --- the client leaving ----------------------------------------------------------------------


async def test_a_client_leaving_before_the_answer_is_recorded_as_499() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get())
    await settle()
    client.leave()
    assert proxy.service.transport.closed
    assert proxy.idle == []
    [record] = proxy.sink.records
    assert record.complete and record.status_code == 499
    assert record.request_complete and not record.response_complete
    assert record.incomplete_reason == "the client closed the connection before the response"
    assert record.response_raw == bytearray()


async def test_a_client_leaving_during_the_response_marks_it_incomplete() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get())
    await settle()
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    client.leave()
    [record] = proxy.sink.records
    assert record.status_code == 200 and not record.response_complete
    assert record.incomplete_reason == "the client closed the connection before the whole response was sent"
    assert proxy.service.transport.closed


async def test_waiting_requests_of_a_client_that_left_are_never_recorded() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get("/1") + get("/2"))
    await settle()
    client.leave()
    assert [record.uri for record in proxy.sink.records] == ["/1"]


# --- answered early --------------------------------------------------------------------------


async def test_an_answer_before_the_whole_request_closes_both_sides() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    await settle()
    exchange = client.protocol.current
    proxy.service.answer(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
    assert client.received() == b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"
    assert exchange is not None and exchange.answered_early
    assert client.closed
    assert proxy.idle == [] and proxy.service.transport.closed  # the service may not read the rest
    [record] = proxy.sink.records
    assert record.status_code == 413 and record.response_complete and not record.request_complete
    assert record.incomplete_reason == "the local service answered before the whole request body was sent"


# --- upgrades --------------------------------------------------------------------------------


UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


async def test_an_accepted_upgrade_turns_into_a_pipe_both_ways() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(UPGRADE + b"early")
    await settle()
    service = proxy.service
    sent = service.received()
    assert sent.startswith(b"GET /ws HTTP/1.1\r\n") and b"Upgrade: websocket\r\nConnection: Upgrade\r\n" in sent
    assert not sent.endswith(b"early")  # held until the service answers
    assert not client.transport.reading
    service.answer(SWITCHED + b"hello")
    assert client.received() == SWITCHED + b"hello"
    assert service.received() == b"early"
    assert client.transport.reading and client.protocol.piping
    exchange = client.protocol.current
    assert exchange is not None and exchange.response is UPGRADED
    client.send(b"\x81\x00 frames")
    assert service.received() == b"\x81\x00 frames"
    service.answer(b"more")
    assert client.received() == b"more"
    [record] = proxy.sink.records
    assert record.complete and record.status_code == 101
    client.protocol.check_timeouts(client.protocol.last_active + 1000, head_timeout=30, idle_timeout=90)
    assert not client.closed  # a pipe has no idle timeout
    service.lose()
    assert client.closed


async def test_a_declined_upgrade_is_forwarded_and_the_held_bytes_are_dropped() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(UPGRADE + b"early")
    await settle()
    service = proxy.service
    service.received()
    declined = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno"
    service.answer(declined)
    assert client.received() == declined
    assert client.closed
    assert service.received() == b""  # never sent
    assert proxy.idle == [service.protocol]  # it never saw a byte of the other protocol


async def test_a_101_nobody_asked_for_breaks_the_exchange() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(get())
    await settle()
    proxy.service.answer(SWITCHED)
    assert client.closed and proxy.service.transport.closed
    [record] = proxy.sink.records
    assert not record.response_complete
    assert record.incomplete_reason == "the response broke off: the local service switched protocols unasked"


# --- the Traffic Policy's answers (the deprecated keys run as policy rules) ----------------------


async def test_a_denied_address_gets_403_on_a_kept_connection_and_nothing_is_forwarded() -> None:
    proxy = ProxyHarness(http_spec(ip_restriction={"deny_cidrs": ["198.51.100.0/24"]}))
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab")
    out = client.received()
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"Connection: keep-alive\r\n" in out
    client.send(b"c" + get())
    assert client.received().startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert not client.closed
    assert proxy.services == []
    # Captured as they crossed: the request whole (the body read and kept), the agent's 403, the step.
    await settle()
    first = proxy.sink.records[0]
    assert bytes(first.request_raw).endswith(b"\r\n\r\nabc") and first.request_complete
    assert first.status_code == 403 and bytes(first.response_raw or b"").startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert [(step.action, step.terminal) for step in first.policy_trace] == [("restrict-ips", True)]


async def test_basic_auth_answers_401_with_a_challenge_and_lets_good_credentials_through() -> None:
    proxy = ProxyHarness(http_spec(basic_auth=["user:password"]))
    client = proxy.connect()
    client.send(get("/1", extra=b"Connection: close\r\n"))
    out = client.received()
    assert out.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b'WWW-Authenticate: Basic realm="ngrok"\r\n' in out and b"Connection: close\r\n" in out
    assert client.closed
    client = proxy.connect()
    client.send(get("/2", extra=b"Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n"))
    await settle()
    assert proxy.service.received().startswith(b"GET /2 HTTP/1.1\r\n")
    assert [record.uri for record in proxy.sink.records] == ["/1", "/2"]
    refused, passed = proxy.sink.records
    assert refused.status_code == 401 and refused.policy_trace[0].outcome.startswith("refused 401")
    assert [step.terminal for step in passed.policy_trace] == [False]


async def test_a_refused_pipelined_request_is_answered_in_its_turn() -> None:
    proxy = ProxyHarness(http_spec(basic_auth=["user:password"]))
    client = proxy.connect()
    good = b"Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n"
    client.send(get("/1", extra=good) + get("/2") + get("/3", extra=good))
    await settle()
    assert client.received() == b""
    proxy.service.answer(OK)
    out = client.received()
    assert out.startswith(OK + b"HTTP/1.1 401 Unauthorized\r\n")
    assert proxy.service.received().endswith(forwarded("/3", extra=good))
    proxy.service.answer(OK)
    assert client.received() == OK


# --- states ----------------------------------------------------------------------------------


async def test_an_exchange_moves_through_named_states() -> None:
    proxy = ProxyHarness()
    client = proxy.connect()
    client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
    await settle()
    exchange = client.protocol.current
    assert exchange is not None
    assert (exchange.request, exchange.response.name) == (RECEIVING, "AWAITING")
    client.send(b"ab")
    assert exchange.request is COMPLETE
    proxy.service.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    assert exchange.response is STARTED
    proxy.service.answer(b"cd")
    assert exchange.response is FINISHED
    assert "COMPLETE FINISHED" in repr(exchange)


@pytest.mark.parametrize("inspect", [True, False])
async def test_nothing_is_recorded_when_inspection_is_off(inspect: bool) -> None:
    proxy = ProxyHarness(inspect=inspect)
    client = proxy.connect()
    client.send(get())
    await settle()
    proxy.service.answer(OK)
    assert len(proxy.sink.records) == (1 if inspect else 0)
    assert proxy.context.metrics.http.count == 1
