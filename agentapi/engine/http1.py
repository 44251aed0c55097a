"""HTTP/1.x protocol core of the tunnel proxy: bytes in, events out, no sockets.

Rules this module holds (the socket layer in http_proxy.py relies on them):
- Requests are parsed by llhttp (httptools). Each `feed()` returns the events the bytes completed,
  in order: RequestHead, then Body chunks (de-chunked), then RequestEnd; pipelined requests simply
  follow. After a request that asks for `Upgrade`, an `Upgrade` event carries the bytes that came
  after its head and the parser stops: what follows is not HTTP any more.
- A request head larger than MAX_HEAD_BYTES or with more than MAX_HEADERS fields is a
  ProtocolError(431); anything llhttp refuses is a ProtocolError(400), left in `error` after the
  events parsed before it. The connection must then be answered with `error_response()` and closed.
- Responses are parsed only to learn their framing (where each ends, whether the connection stays
  open); the socket layer forwards the upstream's bytes untouched. Interim 1xx responses (100
  Continue) are reported as `interim` and the final one follows. A response to HEAD has no body
  whatever its headers say, which llhttp cannot know, so the caller says so (`expect_head`).
- A response without Content-Length or chunked framing ends when the upstream closes: the caller
  reports that with `eof()`. Bytes after the end of a response in the same read (a body sent after
  a 204, say) are reported as `trailing`: the connection is then not reused.
- The agent's own error pages (`error_response`) carry ngrok's `ngrok-error-code` field, as ngrok
  sets it on every response it made itself ("Errors" in snippets/gateway/shared/http-end-source.mdx;
  the codes are errors/err_ngrok_*.mdx): ERR_NGROK_8012 when the local service could not be
  connected to (refused, unreachable, its TLS certificate refused), ERR_NGROK_3004 when it gave an
  invalid or incomplete response (garbage, a head too large, closed or reset before answering),
  ERR_NGROK_3005 when connecting to it timed out ("gateway timeout: a connection to the server
  could not be established") and ERR_NGROK_3008 when it did not answer in time. The proxy's own
  400, 408 and 431 for a bad request have no ngrok code (ngrok documents none), so they carry none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 200

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop fields that describe one connection, not the message (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset({b"keep-alive", b"proxy-connection", b"te", b"trailer", b"proxy-authorization"})
# What forwarded_head does not copy as it came: the hop-by-hop fields, `Connection`, `Upgrade`
# outside an upgrade, and Host (rewritten).
_SKIP_ON_UPGRADE = _HOP_BY_HOP | {b"connection", b"host"}
_SKIP = _SKIP_ON_UPGRADE | {b"upgrade"}


class ProtocolError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(slots=True)
class RequestHead:
    """A request's start line and header fields as the client sent them (`headers`, in order),
    with each field name lower-cased once in `names` (same order, same length): every rule that
    looks a field up by name reads `names`, so no name is lowered twice per request."""

    method: bytes
    target: bytes
    version: str
    headers: Headers
    names: list[bytes]
    keep_alive: bool
    chunked: bool
    upgrade: bool

    def header(self, name: bytes) -> bytes | None:
        """The first field called `name` (lower case), or None."""
        try:
            return self.headers[self.names.index(name)][1]
        except ValueError:
            return None

    def count(self, name: bytes) -> int:
        """How many fields are called `name` (lower case)."""
        return self.names.count(name)


def request_head(
    method: bytes, target: bytes, version: str, headers: Headers, *, keep_alive: bool, chunked: bool, upgrade: bool
) -> RequestHead:
    """A RequestHead built outside the parser (a policy's changed request, say): names lowered here."""
    names = [name.lower() for name, _ in headers]
    return RequestHead(method, target, version, headers, names, keep_alive, chunked, upgrade)


@dataclass(slots=True)
class Body:
    data: bytes


@dataclass(slots=True)
class RequestEnd:
    pass


@dataclass(slots=True)
class Upgrade:
    rest: bytes


RequestEvent = RequestHead | Body | RequestEnd | Upgrade

_END = RequestEnd()


class RequestParser:
    """Feeds client bytes to llhttp and collects request events.

    Bytes llhttp refuses set `error` (a ProtocolError: 400 or 431); the events parsed before them
    are still returned, so the requests that were fine can be answered first.
    """

    __slots__ = ("_events", "_head_bytes", "_headers", "_parser", "_target", "_upgraded", "error")

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[RequestEvent] = []
        self._target = b""
        self._headers: Headers = []
        self._head_bytes = 0
        self._upgraded = False
        self.error: ProtocolError | None = None

    def feed(self, data: bytes) -> list[RequestEvent]:
        if self._upgraded:
            return [Upgrade(data)]
        if self.error is not None:
            return []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded = True
            self._events.append(Upgrade(data[upgrade.args[0] :]))
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            self.error = cause if isinstance(cause, ProtocolError) else ProtocolError(400, str(error))
        except httptools.HttpParserError as error:
            self.error = ProtocolError(400, _llhttp_reason(error))
        events, self._events = self._events, []
        return events

    # --- llhttp callbacks -----------------------------------------------------------------
    # Each callback is a call from C into Python on every request, so there are as few as the
    # rules need: no on_message_begin (the state is reset when a head completes and when a
    # message ends), the size count inlined.
    def on_url(self, url: bytes) -> None:
        self._target += url
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise ProtocolError(431, f"request head larger than {MAX_HEAD_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise ProtocolError(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
        if len(headers) > MAX_HEADERS:
            raise ProtocolError(431, f"more than {MAX_HEADERS} header fields")

    def on_headers_complete(self) -> None:
        parser = self._parser
        headers = self._headers
        names = [name.lower() for name, _ in headers]
        chunked = False
        if b"transfer-encoding" in names:
            for name, (_, value) in zip(names, headers, strict=True):
                if name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
        self._events.append(
            RequestHead(
                parser.get_method(),
                self._target,
                parser.get_http_version(),
                headers,
                names,
                parser.should_keep_alive(),
                chunked,
                parser.should_upgrade(),
            )
        )
        # Trailer fields (after a chunked body) start a list of their own: the head is out.
        self._target = b""
        self._headers = []
        self._head_bytes = 0

    def on_body(self, data: bytes) -> None:
        self._events.append(Body(data))

    def on_message_complete(self) -> None:
        self._events.append(_END)
        if self._headers:
            self._headers = []  # dropped trailers
        self._head_bytes = 0


def _llhttp_reason(error: Exception) -> str:
    return str(error) or type(error).__name__


@dataclass(slots=True)
class ResponseProgress:
    """What one `ResponseParser.feed()` learned about the response in flight."""

    head_done: bool = False
    status: int = 0
    interim: bool = False
    # An interim response (100 Continue) was read whole in this feed: forward it now.
    interim_seen: bool = False
    done: bool = False
    keep_alive: bool = True
    upgraded: bool = False
    # Bytes followed the end of the response in the same read (e.g. a body after a 204): they
    # belong to no request, so the connection must not be reused.
    trailing: bool = False


class _TrailingBytes(Exception):
    pass


class ResponseParser:
    """Tracks the framing of upstream responses; one instance per upstream connection."""

    # No on_status/on_header callbacks: the bytes are forwarded as they are, so parsing only needs
    # the framing, and every callback llhttp makes into Python costs time on the hot path.
    __slots__ = ("_parser", "_progress", "expect_head", "status")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._progress = ResponseProgress()
        self.expect_head = False
        self.status = 0

    def feed(self, data: bytes) -> ResponseProgress:
        """What `data` taught about the response. The same object each time, reset here (a new
        one per read cost 0.1 us): read it before the next feed."""
        progress = self._progress
        progress.head_done = progress.interim = progress.interim_seen = progress.done = False
        progress.upgraded = progress.trailing = False
        progress.status = 0
        progress.keep_alive = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            progress.upgraded = True
            progress.done = True
        except httptools.HttpParserCallbackError as error:
            if not isinstance(error.__context__, _TrailingBytes):
                raise ProtocolError(502, f"malformed response from upstream: {error.__context__}") from None
            progress.trailing = True
            progress.keep_alive = False
        except httptools.HttpParserError as error:
            if progress.done:  # garbage after a complete response: same as trailing bytes
                progress.trailing = True
                progress.keep_alive = False
                return progress
            raise ProtocolError(502, f"malformed response from upstream: {_llhttp_reason(error)}") from None
        if progress.done and self.expect_head:
            # llhttp still waits for a body that a HEAD response never has: start afresh.
            self._parser = httptools.HttpResponseParser(self)
        return progress

    def eof(self) -> bool:
        """The upstream closed; True when that legitimately ended a close-delimited response."""
        return self.status != 0 and not self._progress.done

    def on_message_begin(self) -> None:
        if self._progress.done:
            raise _TrailingBytes

    def on_headers_complete(self) -> None:
        progress = self._progress
        status = self._parser.get_status_code()
        self.status = status
        progress.status = status
        if 100 <= status < 200 and status != 101:
            progress.interim = True
            progress.interim_seen = True
            return
        progress.head_done = True
        if self.expect_head:  # done now: on_message_complete, which says keep_alive, waits for a body
            progress.done = True
            progress.keep_alive = self._parser.should_keep_alive()

    def on_message_complete(self) -> None:
        progress = self._progress
        if progress.interim:
            progress.interim = False
            progress.head_done = False
            self.status = 0
            return
        progress.done = True
        progress.keep_alive = self._parser.should_keep_alive()


def forwarded_head(
    head: RequestHead,
    *,
    client_ip: str,
    scheme: str,
    host_header: bytes | None,
    remove: frozenset[bytes] = frozenset(),
    add: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """The request head to send upstream: hop-by-hop fields dropped, X-Forwarded-* added.

    Hop-by-hop fields describe the client's connection, not the message (RFC 9110 7.6.1): the
    `Connection` field and every field it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
    and `Upgrade` outside an upgrade. The upstream connection is the agent's own, kept alive for
    reuse: a client's `Connection: close` must not make the service close a pooled connection.
    An upgrade (WebSocket) request goes on as one: `Connection: Upgrade` plus its `Upgrade` field.
    """
    names = head.names
    # Every field in `skip` takes the slow branch below (Host is rewritten, not dropped); the
    # rest are copied as they came, each with one set lookup and one prefix test.
    skip = _SKIP_ON_UPGRADE if head.upgrade else _SKIP
    if b"connection" in names:
        options = _connection_options(head)
        if not options <= skip:  # `keep-alive` alone (the usual) is hop-by-hop already
            skip = skip | options
    if remove:
        skip = skip | remove
    target, authority = origin_form(head.target)
    original_host = b""
    out = [b"%s %s HTTP/%s\r\n" % (head.method, target, head.version.encode())]
    append = out.append
    extend = out.extend  # a field's four pieces joined once at the end: cheaper than a format each
    # `names` is built beside `headers` (same length); zip's strict check would cost more than
    # the loop it guards on a short head. `name[0] == 120`: only names starting with "x" pay the
    # prefix test.
    for name, (field_name, value) in zip(names, head.headers):  # noqa: B905
        if name in skip or (name[0] == 120 and name[:12] == b"x-forwarded-"):
            if name == b"host":
                # An absolute-form target's authority replaces the Host field (RFC 9112 3.2.2).
                original_host = authority or value
                extend((field_name, b": ", original_host if host_header is None else host_header, b"\r\n"))
            continue
        extend((field_name, b": ", value, b"\r\n"))
    if head.upgrade:
        append(b"Connection: Upgrade\r\n")
    if original_host:
        append(
            b"X-Forwarded-For: %s\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Proto: %s\r\n"
            % (client_ip.encode(), original_host, scheme.encode())
        )
    else:
        append(b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n" % (client_ip.encode(), scheme.encode()))
    for name, value in add:
        append(b"%s: %s\r\n" % (name, value))
    append(b"\r\n")
    return b"".join(out)


def origin_form(target: bytes) -> tuple[bytes, bytes | None]:
    """The target to send a service, and the authority of an absolute-form one (else None).

    A client may send `GET http://host/path?q HTTP/1.1` (absolute-form, RFC 9112 3.2.2, as to a
    proxy); services expect origin-form (`/path?q`), as nginx and Go's ReverseProxy send.
    """
    if target[:1] == b"/":
        return target, None  # origin-form: nearly every request
    lower = target[:8].lower()
    if not (lower.startswith(b"http://") or lower.startswith(b"https://")):
        return target, None
    rest = target[target.index(b"://") + 3 :]
    cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if authority.rfind(b"@") >= 0:
        authority = authority[authority.rfind(b"@") + 1 :]  # userinfo is not part of Host
    if not path.startswith(b"/"):
        path = b"/" + path
    return path, authority or None


def _connection_options(head: RequestHead) -> frozenset[bytes]:
    """Lower-cased field names listed in the Connection field(s) (`upgrade` aside: it is kept as
    an upgrade's own field, and _SKIP has it otherwise)."""
    names, headers = head.names, head.headers
    if names.count(b"connection") == 1:  # nearly always: one field, often one option
        values = [headers[names.index(b"connection")][1]]
    else:
        values = [value for name, (_, value) in zip(names, headers, strict=True) if name == b"connection"]
    named = {option.strip().lower() for value in values for option in value.split(b",")}
    named.discard(b"upgrade")
    return frozenset(named)


def final_head_span(response_start: bytes) -> tuple[int, int]:
    """Where the final response head lies in bytes that begin a response: (start, end), `end`
    just past its blank line, after any interim 1xx heads (101 is final). (start, 0) when the
    final head is not complete in these bytes."""
    start = 0
    while response_start.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1"), start) and not response_start.startswith(
        b"101", start + 9
    ):
        end = response_start.find(b"\r\n\r\n", start)
        if end < 0:
            return start, 0
        start = end + 4
    end = response_start.find(b"\r\n\r\n", start)
    return start, (end + 4 if end >= 0 else 0)


def is_close_delimited(response_start: bytes) -> bool:
    """Whether a response whose bytes begin with `response_start` ends only when the connection
    closes: no Content-Length and no Transfer-Encoding in its head (RFC 9112 6.3, rule 8).

    Used only when an upstream closes mid-response, to tell a legitimate end from a cut.
    """
    start, end = final_head_span(response_start)
    head = response_start[start : end or len(response_start)].lower()
    return b"\ncontent-length:" not in head and b"\ntransfer-encoding:" not in head


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def reason_phrase(status: int) -> str:
    if status == CLIENT_CLOSED_REQUEST:
        return "Client Closed Request"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# nginx's status for an exchange whose client left before the answer.
CLIENT_CLOSED_REQUEST = 499


# ngrok's error codes for what the agent answers itself (see the banner).
UPSTREAM_UNREACHABLE = "ERR_NGROK_8012"
UPSTREAM_INVALID_RESPONSE = "ERR_NGROK_3004"
UPSTREAM_CONNECT_TIMEOUT = "ERR_NGROK_3005"
UPSTREAM_RESPONSE_TIMEOUT = "ERR_NGROK_3008"
# How the callers word a failed dial (upstream_dial.dial_error; the engine's replay).
_DIAL_FAILURES = ("failed to connect to the local service", "failed to reach the local service")


def agent_error_code(status: int, detail: str) -> str | None:
    """ngrok's code for one of the agent's error pages: by status, and for a 502 or 504 by what
    failed (the dial, or the answer; see the banner). None for statuses ngrok has no code for."""
    if status == 502:
        return UPSTREAM_UNREACHABLE if detail.startswith(_DIAL_FAILURES) else UPSTREAM_INVALID_RESPONSE
    if status == 504:
        return UPSTREAM_CONNECT_TIMEOUT if "connecting" in detail else UPSTREAM_RESPONSE_TIMEOUT
    return None


def error_response(status: int, detail: str, *, keep_alive: bool = False, error_code: str | None = None) -> bytes:
    """A small self-contained HTML error page, as the real agent answers for a failed upstream.

    `error_code` goes in the `ngrok-error-code` field (and the page); None picks it with
    `agent_error_code(status, detail)`.
    """
    code = error_code if error_code is not None else agent_error_code(status, detail)
    reason = (reason_phrase(status) or "Error").encode("ascii")
    code_line = b"<p>%s</p>" % code.encode("ascii") if code is not None else b""
    body = b"<!DOCTYPE html><html><head><title>%d %s</title></head><body><h1>%d %s</h1><p>%s</p>%s</body></html>\n" % (
        status,
        reason,
        status,
        reason,
        _html_escape(detail).encode("utf-8", "replace"),
        code_line,
    )
    connection = b"keep-alive" if keep_alive else b"close"
    code_field = b"ngrok-error-code: %s\r\n" % code.encode("ascii") if code is not None else b""
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n%s"
        b"Connection: %s\r\n\r\n%s" % (status, reason, len(body), code_field, connection, body)
    )


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(slots=True)
class StoredHead:
    """The start line and header fields of a stored message, read back for the API and the UI."""

    version: str = "1.1"
    method: str = ""
    target: str = ""
    status: int = 0
    reason: str = ""
    # Latin-1 text, one character a byte: the exact bytes come back with `.encode("latin-1")` (replay
    # relies on it). Not for display: show `raw_headers` through agentapi.captures.header_text.
    headers: list[tuple[str, str]] = field(default_factory=list)
    # The header fields as the bytes that were sent, in order.
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body_offset: int = 0


class _HeadCollector:
    def __init__(self, head: StoredHead) -> None:
        self.head = head
        self.target = b""
        self.reason = b""

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head.raw_headers.append((name, value))
        self.head.headers.append((name.decode("latin-1"), value.decode("latin-1")))


def parse_stored_head(raw: bytes, *, response: bool) -> StoredHead:
    """Parse the head of a stored message (as forwarded, so llhttp accepted it once already)."""
    start = 0
    if response:
        # Interim responses (100 Continue) precede the final one in the stored bytes.
        while raw.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1"), start) and not raw.startswith(b"101", start + 9):
            end = raw.find(b"\r\n\r\n", start)
            if end < 0:
                break
            start = end + 4
        raw = raw[start:]
    end = raw.find(b"\r\n\r\n")
    head = StoredHead(body_offset=start + (len(raw) if end < 0 else end + 4))
    collector = _HeadCollector(head)
    parser: httptools.HttpRequestParser | httptools.HttpResponseParser
    parser = httptools.HttpResponseParser(collector) if response else httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(raw[: head.body_offset - start])
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError:
        return head  # a head cut by the capture limit: show what was parsed
    head.version = parser.get_http_version()
    if isinstance(parser, httptools.HttpResponseParser):
        head.status = parser.get_status_code()
        head.reason = collector.reason.decode("latin-1")
    else:
        head.method = parser.get_method().decode("ascii")
        head.target = collector.target.decode("latin-1")
    return head
