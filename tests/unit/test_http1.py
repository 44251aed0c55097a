"""The HTTP/1 protocol core, fed bytes directly (no sockets)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentapi.engine.http1 import (
    MAX_HEAD_BYTES,
    Body,
    ProtocolError,
    RequestEnd,
    RequestEvent,
    RequestHead,
    RequestParser,
    ResponseParser,
    Upgrade,
    error_response,
    forwarded_head,
    is_close_delimited,
    origin_form,
    parse_stored_head,
)


def feed_bytewise(parser: RequestParser, data: bytes) -> list[RequestEvent]:
    events: list[RequestEvent] = []
    for index in range(len(data)):
        events += parser.feed(data[index : index + 1])
    return events


def only_head(data: bytes) -> RequestHead:
    """The head of one whole request without a body: its events are the head, then the end."""
    [head, end] = RequestParser().feed(data)
    assert isinstance(head, RequestHead) and isinstance(end, RequestEnd)
    return head


def test_it_parses_a_request_split_at_every_byte() -> None:
    events = feed_bytewise(RequestParser(), b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.version) == (b"POST", b"/a?b=1", "1.1")
    assert head.headers == [(b"Host", b"x"), (b"Content-Length", b"3")]
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"abc"
    assert isinstance(events[-1], RequestEnd)


def test_chunked_bodies_come_out_dechunked() -> None:
    events = RequestParser().feed(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, RequestHead) and head.chunked
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"abcde"


def test_pipelined_requests_come_out_in_order() -> None:
    events = RequestParser().feed(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    assert [e.target for e in events if isinstance(e, RequestHead)] == [b"/1", b"/2"]


def test_an_upgrade_hands_over_the_bytes_after_the_head() -> None:
    parser = RequestParser()
    events = parser.feed(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00")
    head = events[0]
    assert isinstance(head, RequestHead) and head.upgrade
    assert isinstance(events[-1], Upgrade)
    assert events[-1].rest == b"\x81\x00"
    assert parser.feed(b"more") == [Upgrade(b"more")]


@pytest.mark.parametrize(
    "garbage",
    [b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"\x16\x03\x01\x00"],
)
def test_garbage_is_a_400(garbage: bytes) -> None:
    parser = RequestParser()
    parser.feed(garbage)
    assert parser.error is not None
    assert parser.error.status == 400


def test_an_oversized_head_is_a_431() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
    assert parser.error is not None
    assert parser.error.status == 431


def test_requests_before_garbage_still_come_out() -> None:
    parser = RequestParser()
    events = parser.feed(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n\x00garbage")
    assert [type(e) for e in events] == [RequestHead, RequestEnd]
    assert parser.error is not None
    assert parser.feed(b"more") == []


def test_forwarded_head_adds_x_forwarded_and_drops_hop_by_hop_fields() -> None:
    head = only_head(
        b"GET /p HTTP/1.1\r\nHost: pub:1\r\nKeep-Alive: 5\r\nX-Forwarded-For: spoofed\r\nAccept: */*\r\n\r\n"
    )
    out = forwarded_head(head, client_ip="10.0.0.7", scheme="http", host_header=None)
    assert out == (
        b"GET /p HTTP/1.1\r\nHost: pub:1\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.7\r\n"
        b"X-Forwarded-Host: pub:1\r\nX-Forwarded-Proto: http\r\n\r\n"
    )


def test_forwarded_head_rewrites_host_and_applies_header_rules() -> None:
    head = only_head(b"GET / HTTP/1.1\r\nHost: pub\r\nCookie: a\r\n\r\n")
    out = forwarded_head(
        head,
        client_ip="1.2.3.4",
        scheme="http",
        host_header=b"localhost:8080",
        remove=frozenset({b"cookie"}),
        add=[(b"X-Env", b"dev")],
    )
    assert b"Host: localhost:8080\r\n" in out
    assert b"Cookie" not in out
    assert out.endswith(b"X-Env: dev\r\n\r\n")


def test_response_parser_finds_the_end_of_each_response() -> None:
    parser = ResponseParser()
    progress = parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    assert progress.head_done and not progress.done
    assert parser.status == 200
    assert parser.feed(b"ok").done


def test_a_head_response_ends_after_its_head() -> None:
    parser = ResponseParser()
    parser.expect_head = True
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n").done
    parser.expect_head = False
    assert parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n").done


def test_a_close_delimited_response_ends_at_eof() -> None:
    parser = ResponseParser()
    progress = parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody")
    assert progress.head_done and not progress.done
    assert parser.eof()


def test_a_malformed_response_is_a_502() -> None:
    with pytest.raises(ProtocolError) as error:
        ResponseParser().feed(b"NONSENSE\r\n\r\n")
    assert error.value.status == 502


def test_error_pages_escape_the_detail() -> None:
    page = error_response(502, "<script>")
    assert page.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"&lt;script&gt;" in page
    assert b"Connection: close" in page


def test_stored_heads_parse_back_skipping_interim_responses() -> None:
    head = parse_stored_head(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Nope\r\nA: 1\r\nA: 2\r\n\r\nbody", response=True
    )
    assert (head.status, head.reason, head.headers) == (404, "Nope", [("A", "1"), ("A", "2")])
    request = parse_stored_head(b"DELETE /x?y HTTP/1.0\r\nHost: h\r\n\r\n", response=False)
    assert (request.method, request.target, request.version) == ("DELETE", "/x?y", "1.0")


def test_bytes_after_a_bodiless_response_end_it_without_reuse() -> None:
    progress = ResponseParser().feed(b"HTTP/1.1 204 No Content\r\n\r\nstray body")
    assert progress.done
    assert progress.trailing
    assert not progress.keep_alive


def test_forwarded_head_drops_connection_and_every_field_it_names() -> None:
    head = only_head(
        b"GET /p HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\n"
        b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: 2\r\n\r\n"
    )
    out = forwarded_head(head, client_ip="1.2.3.4", scheme="http", host_header=None)
    assert out.startswith(b"GET /p HTTP/1.1\r\nHost: h\r\nX-Kept: 2\r\n")
    for name in (b"Connection", b"X-Hop", b"TE:", b"Proxy-Connection", b"Upgrade"):
        assert name not in out


def test_forwarded_head_keeps_an_upgrade_as_an_upgrade() -> None:
    events = RequestParser().feed(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: k\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, RequestHead) and head.upgrade
    out = forwarded_head(head, client_ip="1.2.3.4", scheme="http", host_header=None)
    assert b"Upgrade: websocket\r\n" in out
    assert b"Connection: Upgrade\r\n" in out
    assert b"keep-alive" not in out.lower()


def test_a_response_without_length_or_chunking_is_close_delimited() -> None:
    assert is_close_delimited(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody")
    assert is_close_delimited(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n")
    assert not is_close_delimited(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbody")
    assert not is_close_delimited(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody")


def test_an_absolute_form_target_goes_on_in_origin_form_with_its_authority_as_host() -> None:
    head = only_head(b"GET http://app.test:8080/abs?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    out = forwarded_head(head, client_ip="1.2.3.4", scheme="http", host_header=None)
    assert out.startswith(b"GET /abs?x=1 HTTP/1.1\r\nHost: app.test:8080\r\n")
    assert b"X-Forwarded-Host: app.test:8080\r\n" in out
    assert origin_form(b"HTTP://u:p@h?q") == (b"/?q", b"h")
    assert origin_form(b"/plain") == (b"/plain", None)


def test_the_final_head_comes_after_interim_heads_and_101_is_final() -> None:
    from agentapi.engine.http1 import final_head_span

    two = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nextra"
    assert final_head_span(two) == (25, len(two) - 5)
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00"
    assert final_head_span(switch) == (0, len(switch) - 2)
    assert final_head_span(b"HTTP/1.1 200 OK\r\nContent-") == (0, 0)


def test_field_names_are_lowered_once_in_order() -> None:
    head = only_head(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nACCEPT: */*\r\n\r\n")
    assert head.names == [b"host", b"x-a", b"x-a", b"accept"]
    assert head.header(b"x-a") == b"1" and head.header(b"accept") == b"*/*" and head.header(b"te") is None
    assert (head.count(b"x-a"), head.count(b"host"), head.count(b"te")) == (2, 1, 0)


def test_trailers_do_not_change_the_head_and_the_next_request_starts_clean() -> None:
    events = RequestParser().feed(
        b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: h2\r\n\r\n"
    )
    first, second = (e for e in events if isinstance(e, RequestHead))
    assert first.headers == [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")] and first.chunked
    assert (second.target, second.headers, second.names, second.chunked) == (
        b"/b",
        [(b"Host", b"h2")],
        [b"host"],
        False,
    )


def _forwarded_head_reference(
    head: RequestHead,
    *,
    client_ip: str,
    scheme: str,
    host_header: bytes | None,
    remove: frozenset[bytes] = frozenset(),
    add: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """forwarded_head as it was before it read the lowered names (one lower() per rule), kept to
    show the faster one builds the same bytes."""
    named = {b"connection"}
    for name, value in head.headers:
        if name.lower() == b"connection":
            named.update(option.strip().lower() for option in value.split(b","))
    named.discard(b"upgrade")
    target, authority = origin_form(head.target)
    original_host = b""
    out = [b"%s %s HTTP/%s\r\n" % (head.method, target, head.version.encode("ascii"))]
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"host":
            original_host = value = authority or value
            if host_header is not None:
                value = host_header
        elif (
            lower in {b"keep-alive", b"proxy-connection", b"te", b"trailer", b"proxy-authorization"}
            or lower in named
            or lower in remove
            or lower.startswith(b"x-forwarded-")
            or (lower == b"upgrade" and not head.upgrade)
        ):
            continue
        out.append(b"%s: %s\r\n" % (name, value))
    if head.upgrade:
        out.append(b"Connection: Upgrade\r\n")
    out.append(b"X-Forwarded-For: %s\r\n" % client_ip.encode("ascii"))
    if original_host:
        out.append(b"X-Forwarded-Host: %s\r\n" % original_host)
    out.append(b"X-Forwarded-Proto: %s\r\n" % scheme.encode("ascii"))
    for name, value in add:
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(b"\r\n")
    return b"".join(out)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET http://u@abs.test:81/p?q HTTP/1.1\r\nhost: other\r\nAccept: */*\r\n\r\n",
        b"GET / HTTP/1.1\r\nHOST: h\r\nConnection: Host, X-Forwarded-For, Cookie\r\nCookie: c\r\nConnection: te\r\n"
        b"TE: trailers\r\nX-FORWARDED-Proto: https\r\nX-Forwarded: keep\r\nKeep-Alive: 1\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTrailer: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nProxy-Authorization: p\r\nProxy-Connection: k\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\nCookie: x\r\n\r\n",
    ],
)
@pytest.mark.parametrize("host_header", [None, b"localhost:3000"])
def test_forwarded_head_builds_what_the_reference_builds(raw: bytes, host_header: bytes | None) -> None:
    head = next(e for e in RequestParser().feed(raw) if isinstance(e, RequestHead))
    for remove, add in [(frozenset(), ()), (frozenset({b"cookie", b"upgrade", b"host"}), [(b"X-Env", b"dev")])]:
        expected = _forwarded_head_reference(
            head, client_ip="203.0.113.9", scheme="https", host_header=host_header, remove=remove, add=add
        )
        out = forwarded_head(
            head, client_ip="203.0.113.9", scheme="https", host_header=host_header, remove=remove, add=add
        )
        assert out == expected
